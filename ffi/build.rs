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
    let part = |name: &str| -> u32 {
        std::env::var(name)
            .expect("cargo sets this")
            .parse()
            .expect("a number")
    };
    let (major, minor, patch) = (
        part("CARGO_PKG_VERSION_MAJOR"),
        part("CARGO_PKG_VERSION_MINOR"),
        part("CARGO_PKG_VERSION_PATCH"),
    );
    config.after_includes = Some(format!(
        "\n#define CM_VERSION \"{version}\"\n#define CM_VERSION_MAJOR {major}\n#define CM_VERSION_MINOR {minor}\n#define CM_VERSION_PATCH {patch}\n/* major * 10000 + minor * 100 + patch */\n#define CM_VERSION_NUMBER {}\n\n/* An opaque message value (see the cm_value_* functions). */\ntypedef struct cm_value cm_value;\n",
        major * 10000 + minor * 100 + patch
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
