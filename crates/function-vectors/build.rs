//! Adds an rpath to libtorch's lib folder so the `factscope` binary, tests and benches find
//! libtorch at run time without `LD_LIBRARY_PATH` (see `scripts/setup-libtorch.sh`).

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    if let Ok(root) = std::env::var("LIBTORCH") {
        let lib = std::path::Path::new(&root).join("lib");
        // Canonical path: on GPU machines `libtorch/lib` is a symlink into PyTorch's install,
        // whose own `$ORIGIN`-relative rpaths only resolve from the real location.
        let lib = lib.canonicalize().unwrap_or(lib);
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    }
}
