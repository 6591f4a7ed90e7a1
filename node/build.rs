//! N-API linking, plus node/src/v8_blocks.cc (zero-copy ArrayBuffers through V8's C++
//! API) when the headers of the node that builds the addon are at hand: then the
//! `cm_v8` cfg is set. Without them the addon keeps to N-API, which works everywhere.
//!
//! The headers are looked for in `$NODE_INCLUDE_DIR`, then in the `include/node`
//! folder of the node on `PATH` (where node's installers put them).

use std::path::PathBuf;
use std::process::Command;

fn main() {
    napi_build::setup();
    println!("cargo::rustc-check-cfg=cfg(cm_v8)");
    println!("cargo::rerun-if-changed=src/v8_blocks.cc");
    println!("cargo::rerun-if-env-changed=NODE_INCLUDE_DIR");
    let Some(include) = node_include_dir() else {
        println!(
            "cargo::warning=node headers (v8.h) not found: zero-copy ArrayBuffers go through N-API"
        );
        return;
    };
    // A V8 built with its sandbox takes no backing store from outside the sandbox
    // (Node's own builds have it off; its config.gypi says so).
    let config = std::fs::read_to_string(include.join("config.gypi")).unwrap_or_default();
    if config.contains("'v8_enable_sandbox': 1") {
        println!(
            "cargo::warning=this node's V8 has its sandbox on: zero-copy ArrayBuffers go through N-API"
        );
        return;
    }
    cc::Build::new()
        .cpp(true)
        .std("c++17")
        .file("src/v8_blocks.cc")
        // node's own headers, as system headers: their warnings are not ours
        .flag("-isystem")
        .flag(include.as_os_str())
        .flag_if_supported("-fno-exceptions")
        .flag_if_supported("-fno-rtti")
        .warnings(true)
        .compile("cm_v8_blocks");
    println!("cargo::rustc-cfg=cm_v8");
}

fn node_include_dir() -> Option<PathBuf> {
    let has_headers =
        |dir: &PathBuf| dir.join("v8.h").is_file() && dir.join("node_version.h").is_file();
    if let Some(dir) = std::env::var_os("NODE_INCLUDE_DIR").map(PathBuf::from) {
        return has_headers(&dir).then_some(dir);
    }
    let out = Command::new("node")
        .args(["-p", "process.execPath"])
        .output()
        .ok()?;
    let exe = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    let dir = exe.parent()?.parent()?.join("include").join("node");
    has_headers(&dir).then_some(dir)
}
