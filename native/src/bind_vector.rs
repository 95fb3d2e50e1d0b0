//! JS glue for `vector`: the `VectorIndex` class.
//!
//! The index sits behind `Arc<RwLock<_>>`: `add`/`remove` take the write
//! lock on the JS thread, while `search` (JS thread) and `searchAsync`
//! (libuv pool) share the read lock, so a search on a worker never sees a
//! half-applied insert. Queries cross as Float32Array and are read in place
//! for synchronous calls; `searchAsync` copies them before queuing, since
//! the JS side may reuse the array while the work runs.
//!
//! Every failure becomes a thrown `Error` (a rejected promise for
//! `searchAsync`) with a `code` `ERR_NATIVE_VECTOR_*` and a message naming
//! the method and argument; panics are caught in every callback, including
//! the async execute and complete steps.
use std::ffi::{c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::napi::{callback, napi_call, no_unwind, panic_message, CallInfo, Env, JsError, Result};
use crate::sys::{
    self, napi_callback_info, napi_deferred, napi_env, napi_ref, napi_value, property_attributes as attr, status,
    typedarray_type, valuetype,
};
use crate::vector::{Hit, HnswParams, Index, Kind, Metric, VectorError, MAX_DIM, MAX_EF, MAX_M};

/// Largest integer a JS number holds exactly; bounds `seed`.
const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// What `napi_wrap` attaches to each JS `VectorIndex`.
struct Wrapped {
    index: Arc<RwLock<Index>>,
    /// Bytes last reported to V8 with `napi_adjust_external_memory`, so the
    /// garbage collector weighs a JS handle by the index it keeps alive.
    reported: i64,
}

/// Per-environment state.
struct State {
    /// The class constructor, for `VectorIndex.load`.
    ctor: napi_ref,
    /// An index built by `load` and handed to the constructor it calls.
    pending: Option<Index>,
}

fn state(env: Env) -> Result<&'static mut State> {
    env.state(|_| Ok(State { ctor: ptr::null_mut(), pending: None }))
}

pub fn register(env: Env, exports: napi_value) -> Result<()> {
    let methods: [(&CStr, sys::napi_callback); 8] = [
        (c"add", Some(js_add)),
        (c"addBatch", Some(js_add_batch)),
        (c"remove", Some(js_remove)),
        (c"search", Some(js_search)),
        (c"searchAsync", Some(js_search_async)),
        (c"memoryBytes", Some(js_memory_bytes)),
        (c"save", Some(js_save)),
        (c"setEf", Some(js_set_ef)),
    ];
    let getters: [(&CStr, sys::napi_callback, sys::napi_callback); 5] = [
        (c"size", Some(js_size), None),
        (c"dim", Some(js_dim), None),
        (c"metric", Some(js_metric), None),
        (c"kind", Some(js_kind), None),
        (c"ef", Some(js_ef), Some(js_set_ef)),
    ];
    let blank = |name: &CStr| sys::napi_property_descriptor {
        utf8name: name.as_ptr(),
        name: ptr::null_mut(),
        method: None,
        getter: None,
        setter: None,
        value: ptr::null_mut(),
        attributes: attr::napi_default,
        data: ptr::null_mut(),
    };
    let mut props = Vec::new();
    for (name, f) in methods {
        props.push(sys::napi_property_descriptor { method: f, attributes: attr::napi_default_method, ..blank(name) });
    }
    for (name, get, set) in getters {
        props.push(sys::napi_property_descriptor { getter: get, setter: set, attributes: attr::napi_configurable, ..blank(name) });
    }
    props.push(sys::napi_property_descriptor {
        method: Some(js_load),
        attributes: attr::napi_default_method | attr::napi_static,
        ..blank(c"load")
    });
    let name = c"VectorIndex".to_bytes();
    let mut class = ptr::null_mut();
    napi_call!(
        env.0,
        napi_define_class(env.0, name.as_ptr() as *const _, name.len(), Some(js_construct), ptr::null_mut(), props.len(), props.as_ptr(), &mut class)
    )?;
    let st = state(env)?;
    napi_call!(env.0, napi_create_reference(env.0, class, 1, &mut st.ctor))?;
    env.set_named(exports, c"VectorIndex", class)
}

// ---- Errors -----------------------------------------------------------------

fn vector_error(method: &str, e: &VectorError) -> JsError {
    let code = match e.code() {
        "dim_mismatch" => "ERR_NATIVE_VECTOR_DIM_MISMATCH",
        "bad_param" => "ERR_NATIVE_VECTOR_BAD_PARAM",
        "non_finite" => "ERR_NATIVE_VECTOR_NON_FINITE",
        "corrupt" => "ERR_NATIVE_VECTOR_CORRUPT",
        "unsupported_version" => "ERR_NATIVE_VECTOR_UNSUPPORTED_VERSION",
        "capacity" => "ERR_NATIVE_VECTOR_CAPACITY",
        _ => "ERR_NATIVE_VECTOR_INTERNAL",
    };
    JsError::new(code, format!("VectorIndex.{method}: {e}"))
}

fn bad_param(method: &str, message: impl std::fmt::Display) -> JsError {
    JsError::new("ERR_NATIVE_VECTOR_BAD_PARAM", format!("VectorIndex.{method}: {message}"))
}

/// Gives errors raised by the shared helpers this module's codes and the
/// method name.
fn in_method(method: &str, mut err: JsError) -> JsError {
    if err.pending {
        return err;
    }
    err.code = match err.code {
        c if c.starts_with("ERR_NATIVE_VECTOR_") => c,
        "ERR_NATIVE_INVALID_ARG" => "ERR_NATIVE_VECTOR_BAD_PARAM",
        "ERR_NATIVE_PANIC" => "ERR_NATIVE_VECTOR_PANIC",
        _ => "ERR_NATIVE_VECTOR_INTERNAL",
    };
    if !err.message.starts_with("VectorIndex") {
        err.message = format!("VectorIndex.{method}: {}", err.message);
    }
    err
}

fn panic_in(method: &str, p: Box<dyn std::any::Any + Send>) -> JsError {
    JsError::new("ERR_NATIVE_VECTOR_PANIC", format!("VectorIndex.{method}: native code panicked: {}", panic_message(&p)))
}

/// A poisoned lock means a panic interrupted a write: the index may be
/// inconsistent, so it is refused rather than searched.
fn poisoned(method: &str) -> JsError {
    JsError::new(
        "ERR_NATIVE_VECTOR_POISONED",
        format!("VectorIndex.{method}: the index was left inconsistent by an earlier internal error; rebuild or reload it"),
    )
}

/// Runs a method body with its own panic guard, so a panic is reported as
/// `ERR_NATIVE_VECTOR_PANIC` naming the method (the shared `callback` guard
/// stays as the outer net).
unsafe fn method(
    env: napi_env,
    info: napi_callback_info,
    name: &'static str,
    body: impl FnOnce(Env, &CallInfo) -> Result<napi_value>,
) -> napi_value {
    callback(env, info, |e, ci| match catch_unwind(AssertUnwindSafe(|| body(e, ci))) {
        Ok(r) => r.map_err(|err| in_method(name, err)),
        Err(p) => Err(panic_in(name, p)),
    })
}

// ---- Access to the wrapped index ---------------------------------------------

fn wrapped<'a>(env: Env, this: napi_value, method: &str) -> Result<&'a mut Wrapped> {
    let mut p: *mut c_void = ptr::null_mut();
    // SAFETY: `this` is a live handle; p is a local out-pointer.
    let st = unsafe { sys::napi_unwrap(env.0, this, &mut p) };
    if st != status::napi_ok || p.is_null() {
        return Err(JsError::new(
            "ERR_NATIVE_VECTOR_INVALID_THIS",
            format!("VectorIndex.{method} called on an object that is not a VectorIndex"),
        ));
    }
    // SAFETY: only `js_construct` wraps objects of this class, always with a
    // Box<Wrapped>; it lives until the finalizer runs, which cannot happen
    // while `this` is reachable from the current call.
    Ok(unsafe { &mut *(p as *mut Wrapped) })
}

fn read<'a>(w: &'a Wrapped, method: &str) -> Result<RwLockReadGuard<'a, Index>> {
    w.index.read().map_err(|_| poisoned(method))
}

fn write<'a>(w: &'a Wrapped, method: &str) -> Result<RwLockWriteGuard<'a, Index>> {
    w.index.write().map_err(|_| poisoned(method))
}

/// Tells V8 how much native memory the index now holds.
fn report_memory(env: Env, w: &mut Wrapped, bytes: usize) {
    let now = bytes.min(i64::MAX as usize) as i64;
    let delta = now - w.reported;
    if delta != 0 {
        let mut total = 0i64;
        // SAFETY: env is the live environment of this call. A failure only
        // leaves the GC hint stale, so the status is not checked.
        unsafe { sys::napi_adjust_external_memory(env.0, delta, &mut total) };
        w.reported = now;
    }
}

// ---- Argument readers ----------------------------------------------------------

fn is_nullish(env: Env, v: napi_value) -> Result<bool> {
    let t = env.type_of(v)?;
    Ok(t == valuetype::napi_undefined || t == valuetype::napi_null)
}

fn arg_id(env: Env, v: napi_value, method: &str) -> Result<u32> {
    env.get_uint(v, "id", u32::MAX as u64).map(|n| n as u32).map_err(|e| in_method(method, e))
}

fn arg_k(env: Env, v: napi_value) -> Result<usize> {
    env.get_uint(v, "k", u32::MAX as u64).map(|n| n as usize)
}

fn arg_f32s<'a>(env: Env, v: napi_value, what: &str) -> Result<&'a [f32]> {
    env.get_f32s(v, what)
}

fn arg_filter<'a>(env: Env, v: napi_value) -> Result<Option<&'a [u32]>> {
    if is_nullish(env, v)? {
        return Ok(None);
    }
    env.get_u32s(v, "filter").map(Some)
}

fn read_string(env: Env, v: napi_value, what: &str) -> Result<String> {
    let mut out = Vec::new();
    env.append_string(v, &mut out, what)?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Parses the constructor options object.
fn parse_options(env: Env, opts: napi_value) -> Result<(Kind, usize, Metric, HnswParams)> {
    const M: &str = "constructor";
    if env.type_of(opts)? != valuetype::napi_object {
        return Err(bad_param(M, "options must be an object like { dim, metric, kind }"));
    }
    let dim = match env.get_opt(opts, c"dim")? {
        Some(v) => env.get_uint(v, "options.dim", MAX_DIM as u64)? as usize,
        None => return Err(bad_param(M, "options.dim is required")),
    };
    if dim == 0 {
        return Err(bad_param(M, format!("options.dim must be an integer from 1 to {MAX_DIM}, got 0")));
    }
    let metric = match env.get_opt(opts, c"metric")? {
        Some(v) => {
            let s = read_string(env, v, "options.metric")?;
            Metric::parse(&s).ok_or_else(|| bad_param(M, format!("options.metric must be 'cosine', 'ip' or 'l2', got '{s}'")))?
        }
        None => return Err(bad_param(M, "options.metric is required ('cosine', 'ip' or 'l2')")),
    };
    let kind = match env.get_opt(opts, c"kind")? {
        Some(v) => {
            let s = read_string(env, v, "options.kind")?;
            Kind::parse(&s).ok_or_else(|| bad_param(M, format!("options.kind must be 'flat' or 'hnsw', got '{s}'")))?
        }
        None => return Err(bad_param(M, "options.kind is required ('flat' or 'hnsw')")),
    };
    let mut p = HnswParams::default();
    if let Some(v) = env.get_opt(opts, c"m")? {
        p.m = env.get_uint(v, "options.m", MAX_M as u64)? as usize;
    }
    if let Some(v) = env.get_opt(opts, c"efConstruction")? {
        p.ef_construction = env.get_uint(v, "options.efConstruction", MAX_EF as u64)? as usize;
    }
    if let Some(v) = env.get_opt(opts, c"ef")? {
        p.ef = env.get_uint(v, "options.ef", MAX_EF as u64)? as usize;
    }
    if let Some(v) = env.get_opt(opts, c"seed")? {
        p.seed = env.get_uint(v, "options.seed", MAX_SAFE_INTEGER)?;
    }
    // Option names in the messages are the JS ones.
    p.validate().map_err(|e| bad_param(M, format!("options.{e}")))?;
    Ok((kind, dim, metric, p))
}

// ---- Class -------------------------------------------------------------------------

unsafe extern "C" fn js_construct(env: napi_env, info: napi_callback_info) -> napi_value {
    method(env, info, "constructor", |e, ci| {
        let mut target = ptr::null_mut();
        napi_call!(e.0, napi_get_new_target(e.0, info, &mut target))?;
        if target.is_null() {
            return Err(bad_param("constructor", "VectorIndex must be called with new"));
        }
        let st = state(e)?;
        let index = match st.pending.take() {
            // `load` calls the constructor with no arguments after parking
            // the loaded index here.
            Some(ix) if ci.argc == 0 => ix,
            _ => {
                let (kind, dim, metric, params) = parse_options(e, ci.arg(e, 0)?)?;
                Index::new(kind, dim, metric, params).map_err(|err| vector_error("constructor", &err))?
            }
        };
        let bytes = index.memory_bytes();
        let w = Box::into_raw(Box::new(Wrapped { index: Arc::new(RwLock::new(index)), reported: 0 }));
        let wrapped = napi_call!(e.0, napi_wrap(e.0, ci.this, w as *mut c_void, Some(finalize), ptr::null_mut(), ptr::null_mut()));
        if let Err(err) = wrapped {
            // SAFETY: the wrap failed, so nothing else owns the box.
            drop(unsafe { Box::from_raw(w) });
            return Err(err);
        }
        // SAFETY: w is the live box just wrapped.
        report_memory(e, unsafe { &mut *w }, bytes);
        Ok(ci.this)
    })
}

unsafe extern "C" fn finalize(env: napi_env, data: *mut c_void, _hint: *mut c_void) {
    no_unwind("VectorIndex finalizer", || {
        // SAFETY: data is the Box<Wrapped> attached in js_construct, and N-API
        // finalizes each wrap once. Searches still queued hold their own Arc.
        let w = unsafe { Box::from_raw(data as *mut Wrapped) };
        if w.reported != 0 {
            let mut total = 0i64;
            // SAFETY: env is the environment finalizing the object.
            unsafe { sys::napi_adjust_external_memory(env, -w.reported, &mut total) };
        }
        drop(w);
    });
}

unsafe extern "C" fn js_add(env: napi_env, info: napi_callback_info) -> napi_value {
    method(env, info, "add", |e, ci| {
        let w = wrapped(e, ci.this, "add")?;
        let id = arg_id(e, ci.arg(e, 0)?, "add")?;
        let v = arg_f32s(e, ci.arg(e, 1)?, "vector")?;
        let bytes = {
            let mut ix = write(w, "add")?;
            ix.add(id, v).map_err(|err| vector_error("add", &err))?;
            ix.memory_bytes()
        };
        report_memory(e, w, bytes);
        e.undefined()
    })
}

unsafe extern "C" fn js_add_batch(env: napi_env, info: napi_callback_info) -> napi_value {
    method(env, info, "addBatch", |e, ci| {
        let w = wrapped(e, ci.this, "addBatch")?;
        let ids = e.get_u32s(ci.arg(e, 0)?, "ids")?;
        let vs = arg_f32s(e, ci.arg(e, 1)?, "vectors")?;
        let bytes = {
            let mut ix = write(w, "addBatch")?;
            if ids.len().checked_mul(ix.dim()) != Some(vs.len()) {
                return Err(JsError::new(
                    "ERR_NATIVE_VECTOR_DIM_MISMATCH",
                    format!(
                        "VectorIndex.addBatch: vectors has {} values, expected ids.length ({}) x dim ({})",
                        vs.len(),
                        ids.len(),
                        ix.dim()
                    ),
                ));
            }
            ix.add_batch(ids, vs).map_err(|err| vector_error("addBatch", &err))?;
            ix.memory_bytes()
        };
        report_memory(e, w, bytes);
        e.undefined()
    })
}

unsafe extern "C" fn js_remove(env: napi_env, info: napi_callback_info) -> napi_value {
    method(env, info, "remove", |e, ci| {
        let w = wrapped(e, ci.this, "remove")?;
        let id = arg_id(e, ci.arg(e, 0)?, "remove")?;
        let (removed, bytes) = {
            let mut ix = write(w, "remove")?;
            (ix.remove(id), ix.memory_bytes())
        };
        report_memory(e, w, bytes);
        e.boolean(removed)
    })
}

/// `{ ids: Uint32Array, distances: Float32Array }`, nearest first.
fn hits_object(env: Env, hits: &[Hit]) -> Result<napi_value> {
    let ids: Vec<u32> = hits.iter().map(|h| h.id).collect();
    let ds: Vec<f32> = hits.iter().map(|h| h.distance).collect();
    let obj = env.object()?;
    let ids = env.typed_copy(typedarray_type::napi_uint32_array, &ids)?;
    let ds = env.typed_copy(typedarray_type::napi_float32_array, &ds)?;
    env.set_named(obj, c"ids", ids)?;
    env.set_named(obj, c"distances", ds)?;
    Ok(obj)
}

unsafe extern "C" fn js_search(env: napi_env, info: napi_callback_info) -> napi_value {
    method(env, info, "search", |e, ci| {
        let w = wrapped(e, ci.this, "search")?;
        let q = arg_f32s(e, ci.arg(e, 0)?, "query")?;
        let k = arg_k(e, ci.arg(e, 1)?)?;
        let filter = arg_filter(e, ci.arg(e, 2)?)?;
        let hits = read(w, "search")?.search(q, k, filter).map_err(|err| vector_error("search", &err))?;
        hits_object(e, &hits)
    })
}

/// One `searchAsync` call: owned copies of its inputs, the outcome, and the
/// N-API handles to settle and free it.
struct SearchJob {
    index: Arc<RwLock<Index>>,
    query: Vec<f32>,
    k: usize,
    filter: Option<Vec<u32>>,
    outcome: Option<std::result::Result<Vec<Hit>, JsError>>,
    deferred: napi_deferred,
    work: sys::napi_async_work,
}

// SAFETY: the job moves to a pool thread for `execute`, which touches only
// the Arc'd index and the owned vectors; the N-API handles are used only in
// `complete`, back on the JS thread.
unsafe impl Send for SearchJob {}

unsafe extern "C" fn js_search_async(env: napi_env, info: napi_callback_info) -> napi_value {
    method(env, info, "searchAsync", |e, ci| {
        let mut deferred = ptr::null_mut();
        let mut promise = ptr::null_mut();
        napi_call!(e.0, napi_create_promise(e.0, &mut deferred, &mut promise))?;
        if let Err(err) = queue_search(e, ci, deferred) {
            reject(e, deferred, in_method("searchAsync", err))?;
        }
        Ok(promise)
    })
}

/// Validates and copies the arguments, then queues the search. On error the
/// caller rejects the promise (nothing was queued).
fn queue_search(e: Env, ci: &CallInfo, deferred: napi_deferred) -> Result<()> {
    let w = wrapped(e, ci.this, "searchAsync")?;
    let query = arg_f32s(e, ci.arg(e, 0)?, "query")?.to_vec();
    let k = arg_k(e, ci.arg(e, 1)?)?;
    let filter = arg_filter(e, ci.arg(e, 2)?)?.map(|f| f.to_vec());
    let job = Box::into_raw(Box::new(SearchJob {
        index: Arc::clone(&w.index),
        query,
        k,
        filter,
        outcome: None,
        deferred,
        work: ptr::null_mut(),
    }));
    let name = e.string("npcd.VectorIndex.searchAsync")?;
    let mut work = ptr::null_mut();
    let queued = napi_call!(
        e.0,
        napi_create_async_work(e.0, ptr::null_mut(), name, Some(search_execute), Some(search_complete), job as *mut c_void, &mut work)
    )
    .and_then(|()| {
        // SAFETY: job is the live box just created; nothing else uses it
        // until the work is queued.
        unsafe { (*job).work = work };
        let q = napi_call!(e.0, napi_queue_async_work(e.0, work));
        if q.is_err() {
            // SAFETY: the work was created and never queued.
            unsafe { sys::napi_delete_async_work(e.0, work) };
        }
        q
    });
    if let Err(err) = queued {
        // SAFETY: not queued, so this is the only owner.
        drop(unsafe { Box::from_raw(job) });
        return Err(err);
    }
    Ok(())
}

/// Runs on a libuv pool thread: no N-API calls allowed, and no panic may
/// unwind into libuv.
unsafe extern "C" fn search_execute(_env: napi_env, data: *mut c_void) {
    // SAFETY: data is the SearchJob box, owned by this work until complete.
    let job = unsafe { &mut *(data as *mut SearchJob) };
    let out = catch_unwind(AssertUnwindSafe(|| {
        let ix = job.index.read().map_err(|_| poisoned("searchAsync"))?;
        ix.search(&job.query, job.k, job.filter.as_deref()).map_err(|err| vector_error("searchAsync", &err))
    }));
    job.outcome = Some(out.unwrap_or_else(|p| Err(panic_in("searchAsync", p))));
}

/// Back on the JS thread: settle the promise and free the job.
unsafe extern "C" fn search_complete(env: napi_env, st: sys::napi_status, data: *mut c_void) {
    // SAFETY: data is the SearchJob box; complete runs once per work.
    let job = unsafe { Box::from_raw(data as *mut SearchJob) };
    let e = Env(env);
    let deferred = job.deferred;
    no_unwind("VectorIndex.searchAsync completion", || {
        let outcome = match (st, job.outcome) {
            (status::napi_ok, Some(o)) => o,
            (status::napi_cancelled, _) => {
                Err(JsError::new("ERR_NATIVE_VECTOR_CANCELLED", "VectorIndex.searchAsync: the search was cancelled"))
            }
            (s, _) => Err(JsError::new("ERR_NATIVE_VECTOR_INTERNAL", format!("VectorIndex.searchAsync: async work failed with napi_status {s}"))),
        };
        let settled = match outcome {
            Ok(hits) => match hits_object(e, &hits) {
                Ok(v) => napi_call!(env, napi_resolve_deferred(env, deferred, v)),
                Err(err) => reject(e, deferred, in_method("searchAsync", err)),
            },
            Err(err) => reject(e, deferred, err),
        };
        if let Err(err) = settled {
            eprintln!("npcd-native: VectorIndex.searchAsync could not settle its promise: {}", err.message);
        }
        // SAFETY: the work has completed and is deleted exactly once.
        unsafe { sys::napi_delete_async_work(env, job.work) };
    });
}

/// Rejects `deferred` with `err`, or with the pending JS exception when the
/// error came from one (e.g. a throwing getter on an argument).
fn reject(e: Env, deferred: napi_deferred, err: JsError) -> Result<()> {
    let value = if err.pending {
        let mut v = ptr::null_mut();
        napi_call!(e.0, napi_get_and_clear_last_exception(e.0, &mut v))?;
        v
    } else {
        e.error_value(&err)?
    };
    napi_call!(e.0, napi_reject_deferred(e.0, deferred, value))
}

unsafe extern "C" fn js_memory_bytes(env: napi_env, info: napi_callback_info) -> napi_value {
    method(env, info, "memoryBytes", |e, ci| {
        let w = wrapped(e, ci.this, "memoryBytes")?;
        let n = read(w, "memoryBytes")?.memory_bytes();
        e.double(n as f64)
    })
}

unsafe extern "C" fn js_save(env: napi_env, info: napi_callback_info) -> napi_value {
    method(env, info, "save", |e, ci| {
        let w = wrapped(e, ci.this, "save")?;
        let bytes = read(w, "save")?.save();
        e.buffer_copy(&bytes)
    })
}

unsafe extern "C" fn js_load(env: napi_env, info: napi_callback_info) -> napi_value {
    method(env, info, "load", |e, ci| {
        let bytes = e.get_bytes(ci.arg(e, 0)?, "bytes")?;
        let index = Index::load(bytes).map_err(|err| vector_error("load", &err))?;
        let st = state(e)?;
        let mut ctor = ptr::null_mut();
        napi_call!(e.0, napi_get_reference_value(e.0, st.ctor, &mut ctor))?;
        st.pending = Some(index);
        let mut obj = ptr::null_mut();
        let made = napi_call!(e.0, napi_new_instance(e.0, ctor, 0, ptr::null(), &mut obj));
        // Never leave a parked index behind for an unrelated `new`.
        state(e)?.pending = None;
        made?;
        Ok(obj)
    })
}

unsafe extern "C" fn js_set_ef(env: napi_env, info: napi_callback_info) -> napi_value {
    method(env, info, "ef", |e, ci| {
        let w = wrapped(e, ci.this, "ef")?;
        let ef = e.get_uint(ci.arg(e, 0)?, "ef", MAX_EF as u64)? as usize;
        write(w, "ef")?.set_ef(ef).map_err(|err| vector_error("ef", &err))?;
        e.undefined()
    })
}

unsafe extern "C" fn js_ef(env: napi_env, info: napi_callback_info) -> napi_value {
    method(env, info, "ef", |e, ci| {
        let w = wrapped(e, ci.this, "ef")?;
        let ef = read(w, "ef")?.ef().unwrap_or(0);
        e.uint32(ef as u32)
    })
}

unsafe extern "C" fn js_size(env: napi_env, info: napi_callback_info) -> napi_value {
    method(env, info, "size", |e, ci| {
        let w = wrapped(e, ci.this, "size")?;
        let n = read(w, "size")?.len();
        e.double(n as f64)
    })
}

unsafe extern "C" fn js_dim(env: napi_env, info: napi_callback_info) -> napi_value {
    method(env, info, "dim", |e, ci| {
        let w = wrapped(e, ci.this, "dim")?;
        let n = read(w, "dim")?.dim();
        e.uint32(n as u32)
    })
}

unsafe extern "C" fn js_metric(env: napi_env, info: napi_callback_info) -> napi_value {
    method(env, info, "metric", |e, ci| {
        let w = wrapped(e, ci.this, "metric")?;
        let m = read(w, "metric")?.metric();
        e.string(m.name())
    })
}

unsafe extern "C" fn js_kind(env: napi_env, info: napi_callback_info) -> napi_value {
    method(env, info, "kind", |e, ci| {
        let w = wrapped(e, ci.this, "kind")?;
        let k = read(w, "kind")?.kind();
        e.string(k.name())
    })
}
