// Links libgptq. GPTQ_LIB_DIR names the directory holding libgptq.so (e.g. the CMake build dir);
// without it the system linker paths are searched. The test binaries also get an rpath to that
// directory so `cargo test` runs without LD_LIBRARY_PATH.
use std::env;
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-env-changed=GPTQ_LIB_DIR");
    println!("cargo:rerun-if-changed=build.rs");
    if let Ok(dir) = env::var("GPTQ_LIB_DIR") {
        if !Path::new(&dir).is_dir() {
            println!("cargo:warning=GPTQ_LIB_DIR={} is not a directory", dir);
        }
        println!("cargo:rustc-link-search=native={}", dir);
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir);
    } else {
        println!("cargo:warning=GPTQ_LIB_DIR is not set: linking libgptq from the system's library paths");
    }
    println!("cargo:rustc-link-lib=dylib=gptq");
}
