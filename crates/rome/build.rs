//! An rpath to libtorch's lib folder for this package's binaries, tests, benches and examples
//! (one mechanism for the workspace: `factscope-build`).

fn main() {
    factscope_build::libtorch_rpath();
}
