//! Regenerates include/channel_messaging.h from the C-facing items of this crate.
use std::path::PathBuf;

fn main() {
    let crate_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets this"));
    let out = crate_dir.join("../include/channel_messaging.h");
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    let config =
        cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("ffi/cbindgen.toml");
    let version = std::env::var("CARGO_PKG_VERSION").expect("cargo sets this");
    let mut config = config;
    config.after_includes = Some(format!(
        "\n#define CM_VERSION \"{version}\"\n#define CM_VERSION_MAJOR {}\n#define CM_VERSION_MINOR {}\n#define CM_VERSION_PATCH {}\n",
        std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap(),
        std::env::var("CARGO_PKG_VERSION_MINOR").unwrap(),
        std::env::var("CARGO_PKG_VERSION_PATCH").unwrap(),
    ));
    match cbindgen::Builder::new()
        .with_crate(&crate_dir)
        .with_config(config)
        .generate()
    {
        Ok(bindings) => {
            bindings.write_to_file(&out);
        }
        Err(e) => panic!("cbindgen failed: {e}"),
    }
}
