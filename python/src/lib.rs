//! The native module behind the `channel_messaging` Python package
//! (`channel_messaging._native`). The package re-exports everything users need; this
//! module converts values and adapts wake-ups, every rule lives in the Rust core.

use pyo3::prelude::*;

mod broadcast;
mod buffer;
mod capi;
mod convert;
mod dispatch;
mod errors;
mod events;
mod fast;
mod halffloats;
mod handoff;
mod port;

/// The private native module `channel_messaging._native`.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    // The benchmark rows check this, so that they never measure a debug build.
    m.add(
        "_build_profile",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
    )?;
    m.add("_BufferBase", buffer::base_type(py)?)?;
    m.add_class::<port::MessageChannel>()?;
    m.add_class::<port::MessagePort>()?;
    fast::install_all(py)?;
    m.add_class::<port::MessageEvent>()?;
    m.add_class::<port::RecvTask>()?;
    m.add_class::<port::Receive>()?;
    m.add_class::<broadcast::BroadcastChannel>()?;
    m.add_class::<broadcast::PortCollection>()?;
    m.add_function(wrap_pyfunction!(buffer::_buffer_state, m)?)?;
    m.add_function(wrap_pyfunction!(buffer::_buffer_address, m)?)?;
    m.add_function(wrap_pyfunction!(buffer::buffer_pool_stats, m)?)?;
    m.add_function(wrap_pyfunction!(buffer::set_buffer_pool_limit, m)?)?;
    m.add_function(wrap_pyfunction!(buffer::clear_buffer_pool, m)?)?;
    m.add_function(wrap_pyfunction!(handoff::set_handoff_threshold, m)?)?;
    m.add_function(wrap_pyfunction!(handoff::handoff_stats, m)?)?;
    m.add_function(wrap_pyfunction!(port::structured_clone, m)?)?;
    m.add_function(wrap_pyfunction!(port::_post_encoded, m)?)?;
    m.add_function(wrap_pyfunction!(port::_encode, m)?)?;
    m.add_function(wrap_pyfunction!(dispatch::_dispatcher_main, m)?)?;
    m.add_function(wrap_pyfunction!(dispatch::_dispatcher_stop, m)?)?;
    m.add_function(wrap_pyfunction!(dispatch::_dispatcher_after_fork, m)?)?;
    Ok(())
}
