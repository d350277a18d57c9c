//! `factscope serve`: one process holding the model, a page to trace and edit it in the
//! browser (served from the binary, no build step, no network), and the JSON API the page
//! uses (`/api/`, documented in the README).

mod api;
mod worker;

use std::io::Write;
use std::net::{IpAddr, SocketAddr};

use anyhow::Context;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use clap::Args;

use super::common::ModelArgs;

/// Largest request body accepted, in bytes.
const MAX_BODY: usize = 64 * 1024;
/// Jobs that may wait behind the running one before the server answers 503.
const QUEUE: usize = 4;

/// Arguments of `factscope serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// The address to listen on. Anything but a loopback address makes the model reachable
    /// from other machines, without authentication.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// The port (0: any free port; the one chosen is printed).
    #[arg(long, default_value_t = 8765)]
    port: u16,
}

/// Runs `factscope serve` until interrupted.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    if !args.host.is_loopback() {
        eprintln!(
            "warning: --host {} serves the model beyond this machine, and there is no authentication: anyone who reaches the port can run and edit it",
            args.host
        );
    }
    // Bound before the model loads: a port in use is said at once, not after the load.
    let addr = SocketAddr::new(args.host, args.port);
    let listener = std::net::TcpListener::bind(addr)
        .with_context(|| format!("listening on {addr} (--host, --port)"))?;
    listener.set_nonblocking(true)?;
    let loaded = args.model.load()?;
    let (jobs, queue) = std::sync::mpsc::sync_channel(QUEUE);
    // The worker is made on its thread: the editors it builds later need not be `Send`.
    std::thread::Builder::new()
        .name("model".into())
        .spawn(move || worker::Worker::new(loaded).run(queue))
        .context("starting the model's thread")?;
    let app = Router::new()
        .route("/", get(api::page))
        .route("/api/model", get(api::model))
        .route("/api/predict", post(api::predict))
        .route("/api/tokens", post(api::tokens))
        .route("/api/trace", post(api::trace))
        .route("/api/trace/cell", post(api::cell))
        .route("/api/edit", post(api::edit))
        .route("/api/undo", post(api::undo))
        .route("/api/edits", get(api::edits))
        .route("/api/model.gguf", get(api::gguf))
        .route("/api/edits/{id}/delta.safetensors", get(api::delta))
        .fallback(api::not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(api::AppState { jobs });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the server's runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let bound = listener.local_addr()?;
        println!("factscope serve: listening on http://{bound}/ (Ctrl-C stops)");
        std::io::stdout().flush()?;
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .context("serving")
    })
}
