//! Small safe layer over the hand-declared N-API in `sys.rs`.
//!
//! Every `napi_*` call goes through `check`, so a failed status becomes a
//! `JsError` instead of being ignored; every exported function and method is
//! wrapped by `callback`, which catches panics (they must never unwind into
//! Node) and turns errors into thrown JS `Error`s carrying a stable `code`.
use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::ffi::{c_char, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

use crate::sys::{self, napi_callback_info, napi_env, napi_value, status, valuetype};

/// An error to be thrown into JavaScript: `new Error(message)` with `code`
/// and optional extra properties (numbers or strings).
#[derive(Debug)]
pub struct JsError {
    pub code: &'static str,
    pub message: String,
    pub props: Vec<(&'static CStr, Prop)>,
    /// An exception is already pending in the engine (e.g. a getter threw);
    /// it propagates as it is.
    pub pending: bool,
}

#[derive(Debug)]
pub enum Prop {
    Num(f64),
    Str(String),
}

impl JsError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        JsError { code, message: message.into(), props: Vec::new(), pending: false }
    }

    pub fn with(mut self, name: &'static CStr, value: Prop) -> Self {
        self.props.push((name, value));
        self
    }

    /// A wrong argument from JavaScript.
    pub fn arg(message: impl Into<String>) -> Self {
        JsError::new("ERR_NATIVE_INVALID_ARG", message)
    }
}

pub type Result<T> = std::result::Result<T, JsError>;

/// Turns an N-API status into a `Result`, naming the call that failed.
#[inline]
pub fn check(env: napi_env, st: sys::napi_status, call: &'static str) -> Result<()> {
    if st == status::napi_ok {
        return Ok(());
    }
    let mut pending = false;
    // SAFETY: env is the live environment of the current call.
    unsafe { sys::napi_is_exception_pending(env, &mut pending) };
    let mut err = JsError::new("ERR_NATIVE_NAPI", format!("{call} failed with napi_status {st}"));
    err.pending = pending;
    Err(err)
}

/// Checks a status inside a function returning `Result`.
macro_rules! napi_call {
    ($env:expr, $name:ident ( $($arg:expr),* $(,)? )) => {{
        // SAFETY: the arguments are live handles of this call's environment
        // and out-pointers to locals, as the N-API function requires.
        let st = unsafe { $crate::sys::$name($($arg),*) };
        $crate::napi::check($env, st, stringify!($name))
    }};
}
pub(crate) use napi_call;

/// The environment of one call from JavaScript. Copyable and valid only
/// during that call.
#[derive(Clone, Copy)]
pub struct Env(pub napi_env);

/// The arguments of one call.
pub struct CallInfo {
    pub this: napi_value,
    pub argc: usize,
    pub args: [napi_value; 8],
    pub data: *mut c_void,
}

impl CallInfo {
    /// The i-th argument, or `undefined` when missing.
    #[inline]
    pub fn arg(&self, env: Env, i: usize) -> Result<napi_value> {
        if i < self.argc.min(8) {
            Ok(self.args[i])
        } else {
            env.undefined()
        }
    }
}

/// Runs an exported function body: reads the arguments, catches panics, and
/// throws errors. Returns null (which N-API turns into `undefined`) on error.
///
/// # Safety
/// `env` and `info` must be the values N-API passed to the callback.
pub unsafe fn callback(env: napi_env, info: napi_callback_info, body: impl FnOnce(Env, &CallInfo) -> Result<napi_value>) -> napi_value {
    let e = Env(env);
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let mut ci = CallInfo { this: ptr::null_mut(), argc: 8, args: [ptr::null_mut(); 8], data: ptr::null_mut() };
        napi_call!(env, napi_get_cb_info(env, info, &mut ci.argc, ci.args.as_mut_ptr(), &mut ci.this, &mut ci.data))?;
        body(e, &ci)
    }));
    match outcome {
        Ok(Ok(v)) => v,
        Ok(Err(err)) => {
            e.throw(err);
            ptr::null_mut()
        }
        Err(panic) => {
            e.throw(panic_error(panic));
            ptr::null_mut()
        }
    }
}

/// Runs code that must not unwind out of a callback N-API calls without a
/// JS frame to throw into (finalizers, async execute): a panic is reported
/// and swallowed.
pub fn no_unwind<T>(what: &'static str, f: impl FnOnce() -> T) -> Option<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => Some(v),
        Err(p) => {
            eprintln!("npcd-native: panic in {what}: {}", panic_message(&p));
            None
        }
    }
}

pub fn panic_message(p: &Box<dyn Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

pub fn panic_error(p: Box<dyn Any + Send>) -> JsError {
    JsError::new("ERR_NATIVE_PANIC", format!("native code panicked: {}", panic_message(&p)))
}

impl Env {
    /// Throws `err` unless an exception is already pending.
    pub fn throw(self, err: JsError) {
        if err.pending {
            return;
        }
        if let Ok(value) = self.error_value(&err) {
            // SAFETY: value is a live Error object of this environment.
            unsafe { sys::napi_throw(self.0, value) };
        }
    }

    /// Builds the `Error` object for `err` (also used to reject promises).
    pub fn error_value(self, err: &JsError) -> Result<napi_value> {
        let code = self.string(err.code)?;
        let msg = self.string(&err.message)?;
        let mut value = ptr::null_mut();
        napi_call!(self.0, napi_create_error(self.0, code, msg, &mut value))?;
        for (name, prop) in &err.props {
            let v = match prop {
                Prop::Num(n) => self.double(*n)?,
                Prop::Str(s) => self.string(s)?,
            };
            self.set_named(value, name, v)?;
        }
        Ok(value)
    }

    #[inline]
    pub fn undefined(self) -> Result<napi_value> {
        let mut v = ptr::null_mut();
        napi_call!(self.0, napi_get_undefined(self.0, &mut v))?;
        Ok(v)
    }

    #[inline]
    pub fn null(self) -> Result<napi_value> {
        let mut v = ptr::null_mut();
        napi_call!(self.0, napi_get_null(self.0, &mut v))?;
        Ok(v)
    }

    #[inline]
    pub fn boolean(self, b: bool) -> Result<napi_value> {
        let mut v = ptr::null_mut();
        napi_call!(self.0, napi_get_boolean(self.0, b, &mut v))?;
        Ok(v)
    }

    #[inline]
    pub fn double(self, n: f64) -> Result<napi_value> {
        let mut v = ptr::null_mut();
        napi_call!(self.0, napi_create_double(self.0, n, &mut v))?;
        Ok(v)
    }

    #[inline]
    pub fn uint32(self, n: u32) -> Result<napi_value> {
        let mut v = ptr::null_mut();
        napi_call!(self.0, napi_create_uint32(self.0, n, &mut v))?;
        Ok(v)
    }

    #[inline]
    pub fn string(self, s: &str) -> Result<napi_value> {
        let mut v = ptr::null_mut();
        napi_call!(self.0, napi_create_string_utf8(self.0, s.as_ptr() as *const c_char, s.len(), &mut v))?;
        Ok(v)
    }

    #[inline]
    pub fn type_of(self, value: napi_value) -> Result<i32> {
        let mut t = 0;
        napi_call!(self.0, napi_typeof(self.0, value, &mut t))?;
        Ok(t)
    }

    /// A JS number, or an `ERR_NATIVE_INVALID_ARG` naming `what`.
    pub fn get_f64(self, value: napi_value, what: &str) -> Result<f64> {
        let mut n = 0.0;
        // SAFETY: value is a live handle; n is a local out-pointer.
        let st = unsafe { sys::napi_get_value_double(self.0, value, &mut n) };
        if st == status::napi_number_expected {
            return Err(JsError::arg(format!("{what} must be a number")));
        }
        check(self.0, st, "napi_get_value_double")?;
        Ok(n)
    }

    /// A non-negative integer no larger than `max`, or an error naming `what`.
    pub fn get_uint(self, value: napi_value, what: &str, max: u64) -> Result<u64> {
        let n = self.get_f64(value, what)?;
        if !(n >= 0.0 && n.fract() == 0.0 && n <= max as f64) {
            return Err(JsError::arg(format!("{what} must be an integer from 0 to {max}, got {n}")));
        }
        Ok(n as u64)
    }

    /// A JS boolean, or an error naming `what`.
    pub fn get_bool(self, value: napi_value, what: &str) -> Result<bool> {
        let mut b = false;
        // SAFETY: value is a live handle; b is a local out-pointer.
        let st = unsafe { sys::napi_get_value_bool(self.0, value, &mut b) };
        if st == status::napi_boolean_expected {
            return Err(JsError::arg(format!("{what} must be a boolean")));
        }
        check(self.0, st, "napi_get_value_bool")?;
        Ok(b)
    }

    /// Appends the UTF-8 bytes of a JS string to `out`; returns how many were
    /// written. Errors naming `what` when the value is not a string.
    pub fn append_string(self, value: napi_value, out: &mut Vec<u8>, what: &str) -> Result<usize> {
        // First try to write into the spare capacity directly: most strings
        // fit, and this avoids asking V8 for the UTF-8 length separately.
        let start = out.len();
        if out.capacity() - start < 64 {
            out.reserve(256);
        }
        let spare = out.capacity() - start;
        let mut written = 0usize;
        // SAFETY: the pointer addresses `spare` writable bytes of out's
        // allocation; N-API writes at most spare-1 bytes plus a NUL.
        let st = unsafe { sys::napi_get_value_string_utf8(self.0, value, out.as_mut_ptr().add(start) as *mut c_char, spare, &mut written) };
        if st == status::napi_string_expected {
            return Err(JsError::arg(format!("{what} must be a string")));
        }
        check(self.0, st, "napi_get_value_string_utf8")?;
        // A cut never leaves 4 or more bytes unused (the longest UTF-8
        // sequence), so with that much room left the string was complete.
        if written + 4 < spare {
            // SAFETY: N-API initialised `written` bytes past `start`.
            unsafe { out.set_len(start + written) };
            return Ok(written);
        }
        // It may have been cut: ask for the exact length and write again.
        let mut len = 0usize;
        napi_call!(self.0, napi_get_value_string_utf8(self.0, value, ptr::null_mut(), 0, &mut len))?;
        out.reserve(len + 1);
        napi_call!(self.0, napi_get_value_string_utf8(self.0, value, out.as_mut_ptr().add(start) as *mut c_char, len + 1, &mut written))?;
        // SAFETY: N-API initialised `written` (== len) bytes past `start`.
        unsafe { out.set_len(start + written) };
        Ok(written)
    }

    /// The bytes of a Buffer, typed array, DataView or ArrayBuffer, borrowed
    /// for the duration of the call.
    pub fn get_bytes<'a>(self, value: napi_value, what: &str) -> Result<&'a [u8]> {
        let mut data: *mut c_void = ptr::null_mut();
        let mut len = 0usize;
        // Each getter fails cheaply (napi_invalid_arg, no exception) on the
        // wrong type, so trying them in turn costs one call in the common
        // cases: an ArrayBuffer (what uWS hands over) or a typed array.
        // SAFETY: value is a live handle; the out-pointers are locals.
        let st = unsafe { sys::napi_get_arraybuffer_info(self.0, value, &mut data, &mut len) };
        if st != status::napi_ok {
            let mut kind = 0;
            let mut count = 0usize;
            let mut ab = ptr::null_mut();
            let mut off = 0usize;
            // SAFETY: as above.
            let st = unsafe { sys::napi_get_typedarray_info(self.0, value, &mut kind, &mut count, &mut data, &mut ab, &mut off) };
            if st == status::napi_ok {
                len = count * typed_array_element_size(kind);
            } else {
                let mut is = false;
                napi_call!(self.0, napi_is_dataview(self.0, value, &mut is))?;
                if !is {
                    return Err(JsError::arg(format!("{what} must be a Uint8Array, Buffer or ArrayBuffer")));
                }
                napi_call!(self.0, napi_get_dataview_info(self.0, value, &mut len, &mut data, &mut ab, &mut off))?;
            }
        }
        if len == 0 || data.is_null() {
            return Ok(&[]);
        }
        // SAFETY: the engine keeps the backing store alive while the value is
        // reachable, which it is for the whole call (it is an argument).
        Ok(unsafe { std::slice::from_raw_parts(data as *const u8, len) })
    }

    /// The elements of a typed array of the given kind, borrowed for the call.
    pub fn get_typed<'a, T>(self, value: napi_value, want: i32, what: &str, kind_name: &str) -> Result<&'a [T]> {
        let mut is = false;
        napi_call!(self.0, napi_is_typedarray(self.0, value, &mut is))?;
        if !is {
            return Err(JsError::arg(format!("{what} must be a {kind_name}")));
        }
        let mut kind = 0;
        let mut count = 0usize;
        let mut data: *mut c_void = ptr::null_mut();
        let mut ab = ptr::null_mut();
        let mut off = 0usize;
        napi_call!(self.0, napi_get_typedarray_info(self.0, value, &mut kind, &mut count, &mut data, &mut ab, &mut off))?;
        if kind != want {
            return Err(JsError::arg(format!("{what} must be a {kind_name}")));
        }
        if count == 0 || data.is_null() {
            return Ok(&[]);
        }
        if (data as usize) % std::mem::align_of::<T>() != 0 {
            return Err(JsError::arg(format!("{what} must be aligned to {} bytes", std::mem::align_of::<T>())));
        }
        // SAFETY: typed arrays of `kind` hold `count` elements of T at data,
        // alive for the call; alignment was checked above.
        Ok(unsafe { std::slice::from_raw_parts(data as *const T, count) })
    }

    pub fn get_f32s<'a>(self, value: napi_value, what: &str) -> Result<&'a [f32]> {
        self.get_typed(value, sys::typedarray_type::napi_float32_array, what, "Float32Array")
    }

    pub fn get_u32s<'a>(self, value: napi_value, what: &str) -> Result<&'a [u32]> {
        self.get_typed(value, sys::typedarray_type::napi_uint32_array, what, "Uint32Array")
    }

    /// A new Node Buffer holding a copy of `bytes`.
    pub fn buffer_copy(self, bytes: &[u8]) -> Result<napi_value> {
        let mut v = ptr::null_mut();
        let mut data = ptr::null_mut();
        napi_call!(self.0, napi_create_buffer_copy(self.0, bytes.len(), bytes.as_ptr() as *const c_void, &mut data, &mut v))?;
        Ok(v)
    }

    /// A new typed array of `kind` holding a copy of `items`.
    pub fn typed_copy<T: Copy>(self, kind: i32, items: &[T]) -> Result<napi_value> {
        let bytes = std::mem::size_of_val(items);
        let mut data: *mut c_void = ptr::null_mut();
        let mut ab = ptr::null_mut();
        napi_call!(self.0, napi_create_arraybuffer(self.0, bytes, &mut data, &mut ab))?;
        if bytes > 0 {
            // SAFETY: the new ArrayBuffer has `bytes` writable bytes at data.
            unsafe { ptr::copy_nonoverlapping(items.as_ptr() as *const u8, data as *mut u8, bytes) };
        }
        let mut v = ptr::null_mut();
        napi_call!(self.0, napi_create_typedarray(self.0, kind, items.len(), ab, 0, &mut v))?;
        Ok(v)
    }

    pub fn object(self) -> Result<napi_value> {
        let mut v = ptr::null_mut();
        napi_call!(self.0, napi_create_object(self.0, &mut v))?;
        Ok(v)
    }

    pub fn set_named(self, object: napi_value, name: &CStr, value: napi_value) -> Result<()> {
        napi_call!(self.0, napi_set_named_property(self.0, object, name.as_ptr(), value))
    }

    pub fn get_named(self, object: napi_value, name: &CStr) -> Result<napi_value> {
        let mut v = ptr::null_mut();
        napi_call!(self.0, napi_get_named_property(self.0, object, name.as_ptr(), &mut v))?;
        Ok(v)
    }

    /// `object[name]`, or None when it is undefined.
    pub fn get_opt(self, object: napi_value, name: &CStr) -> Result<Option<napi_value>> {
        let v = self.get_named(object, name)?;
        Ok(if self.type_of(v)? == valuetype::napi_undefined { None } else { Some(v) })
    }

    /// Adds a function property `name` to `object`.
    pub fn export_fn(self, object: napi_value, name: &CStr, cb: sys::napi_callback) -> Result<()> {
        let mut f = ptr::null_mut();
        let bytes = name.to_bytes();
        napi_call!(self.0, napi_create_function(self.0, bytes.as_ptr() as *const c_char, bytes.len(), cb, ptr::null_mut(), &mut f))?;
        self.set_named(object, name, f)
    }

    /// Per-environment state of type T (one per Node environment: the main
    /// thread and each worker thread that loads the module), created on
    /// first use. Statics would be shared across environments, whose handles
    /// must never mix.
    pub fn state<T: 'static>(self, init: impl FnOnce(Env) -> Result<T>) -> Result<&'static mut T> {
        let mut data: *mut c_void = ptr::null_mut();
        napi_call!(self.0, napi_get_instance_data(self.0, &mut data))?;
        if data.is_null() {
            return Err(JsError::new("ERR_NATIVE_NAPI", "module instance data is missing"));
        }
        // SAFETY: instance data is the InstanceData box set in `init_instance`
        // and lives until the environment is torn down; N-API calls for one
        // environment run on its single JS thread, so access is exclusive.
        let inst = unsafe { &mut *(data as *mut InstanceData) };
        let key = TypeId::of::<T>();
        if !inst.slots.contains_key(&key) {
            let value = init(self)?;
            inst.slots.insert(key, Box::new(value));
        }
        Ok(inst.slots.get_mut(&key).and_then(|b| b.downcast_mut::<T>()).expect("slot holds its own type"))
    }

    /// Installs the per-environment state map; called once at registration.
    pub fn init_instance(self) -> Result<()> {
        let data = Box::into_raw(Box::new(InstanceData { slots: HashMap::new() }));
        napi_call!(self.0, napi_set_instance_data(self.0, data as *mut c_void, Some(finalize_instance), ptr::null_mut()))
    }
}

/// Native data owned by a JS external, with strong references that keep JS
/// values (e.g. the typed arrays the data points into) alive as long as the
/// external. The type tag comes first so that an external of another kind
/// is recognised instead of misread.
#[repr(C)]
struct Owned<T> {
    tag: TypeId,
    value: T,
    refs: Vec<sys::napi_ref>,
}

unsafe extern "C" fn finalize_owned<T: 'static>(env: napi_env, data: *mut c_void, _hint: *mut c_void) {
    no_unwind("external finalizer", || {
        // SAFETY: data is the box created by `external`, finalized exactly once.
        let owned = unsafe { Box::from_raw(data as *mut Owned<T>) };
        for r in owned.refs {
            // SAFETY: each reference was created in this environment.
            unsafe { sys::napi_delete_reference(env, r) };
        }
    });
}

impl Env {
    /// A JS external owning `value` and keeping `keep_alive` alive with it.
    pub fn external<T: 'static>(self, value: T, keep_alive: &[napi_value]) -> Result<napi_value> {
        let mut owned = Box::new(Owned { tag: TypeId::of::<T>(), value, refs: Vec::with_capacity(keep_alive.len()) });
        for &v in keep_alive {
            let mut r = ptr::null_mut();
            if let Err(e) = napi_call!(self.0, napi_create_reference(self.0, v, 1, &mut r)) {
                for r in owned.refs {
                    // SAFETY: created above in this environment.
                    unsafe { sys::napi_delete_reference(self.0, r) };
                }
                return Err(e);
            }
            owned.refs.push(r);
        }
        let raw = Box::into_raw(owned);
        let mut v = ptr::null_mut();
        if let Err(e) = napi_call!(self.0, napi_create_external(self.0, raw as *mut c_void, Some(finalize_owned::<T>), ptr::null_mut(), &mut v)) {
            // SAFETY: raw came from Box::into_raw above and was not handed out.
            let owned = unsafe { Box::from_raw(raw) };
            for r in owned.refs {
                // SAFETY: created above in this environment.
                unsafe { sys::napi_delete_reference(self.0, r) };
            }
            return Err(e);
        }
        Ok(v)
    }

    /// The value an external made by `external::<T>` owns, or an
    /// ERR_NATIVE_INVALID_ARG naming `what` for anything else.
    pub fn get_external<'a, T: 'static>(self, v: napi_value, what: &str) -> Result<&'a T> {
        let mut raw: *mut c_void = ptr::null_mut();
        // SAFETY: v is a live handle; raw is a local out-pointer.
        let st = unsafe { sys::napi_get_value_external(self.0, v, &mut raw) };
        if st != status::napi_ok || raw.is_null() {
            return Err(JsError::arg(format!("{what} is not a value this module made")));
        }
        // SAFETY: externals reaching this module are made by `external`, so
        // the tag at offset 0 (repr(C)) can be read; it tells the type.
        let tag = unsafe { *(raw as *const TypeId) };
        if tag != TypeId::of::<T>() {
            return Err(JsError::arg(format!("{what} is a value of another kind")));
        }
        // SAFETY: the tag says raw is an Owned<T>, alive while its external
        // is (it is an argument of the current call).
        Ok(unsafe { &(*(raw as *const Owned<T>)).value })
    }
}

pub struct InstanceData {
    slots: HashMap<TypeId, Box<dyn Any>>,
}

unsafe extern "C" fn finalize_instance(_env: napi_env, data: *mut c_void, _hint: *mut c_void) {
    no_unwind("instance finalizer", || {
        // SAFETY: data is the box installed by init_instance, finalized once.
        drop(unsafe { Box::from_raw(data as *mut InstanceData) });
    });
}

#[allow(non_upper_case_globals)]
pub fn typed_array_element_size(kind: i32) -> usize {
    use sys::typedarray_type::*;
    match kind {
        napi_int8_array | napi_uint8_array | napi_uint8_clamped_array => 1,
        napi_int16_array | napi_uint16_array => 2,
        napi_int32_array | napi_uint32_array | napi_float32_array => 4,
        _ => 8,
    }
}
