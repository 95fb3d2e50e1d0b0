//! npcd's native module: MessagePack framing and vector search for Node,
//! through N-API declared by hand (`sys`). This file is only the module's
//! entry point and export table; the logic lives in `msgpack` and `vector`
//! (plain Rust with their own tests), the JS glue in the `bind_*` modules.
pub mod msgpack;
pub mod vector;

mod bind_msgpack;
mod bind_vector;
mod napi;
mod sys;

use napi::Env;
use sys::{napi_env, napi_value};

/// N-API version this module needs (Node 20 has 9).
#[no_mangle]
pub extern "C" fn node_api_module_get_api_version_v1() -> i32 {
    8
}

/// Called by Node when the module is loaded into an environment (the main
/// thread or a worker thread).
///
/// # Safety
/// Called by Node with a live environment and its `exports` object.
#[no_mangle]
pub unsafe extern "C" fn napi_register_module_v1(env: napi_env, exports: napi_value) -> napi_value {
    let e = Env(env);
    let registered = napi::no_unwind("module registration", || -> napi::Result<()> {
        e.init_instance()?;
        bind_msgpack::register(e, exports)?;
        bind_vector::register(e, exports)?;
        e.export_fn(exports, c"panicForTest", Some(js_panic_for_test))?;
        Ok(())
    });
    match registered {
        Some(Ok(())) => exports,
        Some(Err(err)) => {
            e.throw(err);
            std::ptr::null_mut()
        }
        None => {
            e.throw(napi::JsError::new("ERR_NATIVE_PANIC", "native module registration panicked"));
            std::ptr::null_mut()
        }
    }
}

/// Panics on purpose, so that tests can show the guard in `napi::callback`
/// turns a panic into a thrown ERR_NATIVE_PANIC instead of an abort.
unsafe extern "C" fn js_panic_for_test(env: napi_env, info: sys::napi_callback_info) -> napi_value {
    // SAFETY: called by N-API with this call's env and info.
    unsafe { napi::callback(env, info, |_, _| panic!("panicForTest was called")) }
}
