//! Build-script helper for every crate whose binaries, tests, benches or examples link
//! libtorch through factscope (or `tch`).
//!
//! `tch` links libtorch dynamically, and the loader must find `libtorch_cpu.so` when a binary
//! starts. Cargo's `rustc-link-arg` applies only to the package whose build script prints it —
//! never to packages that depend on it — so a library cannot put an rpath into its
//! dependents' binaries. Each package that builds binaries therefore calls this from a
//! one-line `build.rs`:
//!
//! ```ignore
//! // build.rs
//! fn main() {
//!     factscope_build::libtorch_rpath();
//! }
//! ```
//!
//! with `factscope-build` under `[build-dependencies]`. It reads `LIBTORCH` (the folder
//! holding libtorch's `lib/`, as `tch` does) and adds `-Wl,-rpath,<LIBTORCH>/lib` to the
//! package's link lines; without `LIBTORCH` it does nothing (then use `LD_LIBRARY_PATH`).

use std::path::{Path, PathBuf};

/// The lib folder an rpath should name for the libtorch at `root`: `root/lib`, canonicalised
/// where it exists, because on GPU machines `libtorch/lib` may be a symlink into a PyTorch
/// installation whose own `$ORIGIN`-relative rpaths only resolve from the real location.
pub fn lib_dir(root: &Path) -> PathBuf {
    let lib = root.join("lib");
    lib.canonicalize().unwrap_or(lib)
}

/// Prints the cargo instructions that add an rpath to `$LIBTORCH/lib` to this package's
/// binaries, tests, benches and examples, and rebuilds when `LIBTORCH` changes. Call it from
/// `build.rs`; it never fails (without `LIBTORCH` it adds nothing).
pub fn libtorch_rpath() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    if let Ok(root) = std::env::var("LIBTORCH") {
        let lib = lib_dir(Path::new(&root));
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lib_dir_is_root_lib_when_missing() {
        let root = Path::new("/nonexistent/libtorch-root");
        assert_eq!(lib_dir(root), root.join("lib"));
    }
}
