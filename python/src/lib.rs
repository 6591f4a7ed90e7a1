//! The native module behind the `channel_messaging` Python package.

use pyo3::prelude::*;

/// The private native module `channel_messaging._native`.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
