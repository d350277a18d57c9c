//! The JSON API under `/api/` (the page uses it; scripts may too — see the README): request
//! checking, the job queue in front of the model's worker, and server-sent events for the
//! long jobs.

use std::convert::Infallible;
use std::sync::mpsc::{SyncSender, TrySendError};

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use causal_trace::TraceKind;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_stream::StreamExt;

use super::worker::{EditTask, Job, Reply, Task, TraceTask};

/// The page, served from the binary.
const PAGE: &str = include_str!("page.html");

/// Longest prompt, subject or target accepted, in characters.
pub const MAX_TEXT: usize = 1000;
/// Most check prompts of one edit.
pub const MAX_CHECKS: usize = 16;
/// Most noise samples of one trace.
pub const MAX_SAMPLES: usize = 50;
/// Most next tokens listed.
pub const MAX_TOP: usize = 50;

/// What every handler shares: the queue of the model's worker.
#[derive(Clone)]
pub struct AppState {
    /// Bounded: when it is full the server answers 503 instead of queueing without end.
    pub jobs: SyncSender<Job>,
}

/// An error answer: a status and `{"error": "..."}` naming what is wrong.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn bad(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        ApiError {
            status: r.status(),
            message: r.body_text(),
        }
    }
}

/// `GET /`: the page.
pub async fn page() -> Html<&'static str> {
    Html(PAGE)
}

/// Any other path: 404 with a JSON error.
pub async fn not_found() -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        message: "no such page or API route (see /api/ in the README)".into(),
    }
}

fn submit(state: &AppState, task: Task) -> Result<UnboundedReceiver<Reply>, ApiError> {
    let (replies, rx) = unbounded_channel();
    match state.jobs.try_send(Job { task, replies }) {
        Ok(()) => Ok(rx),
        Err(TrySendError::Full(_)) => Err(ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: "busy: the model is working on earlier requests; try again shortly".into(),
        }),
        Err(TrySendError::Disconnected(_)) => Err(ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: "the model's worker has stopped".into(),
        }),
    }
}

fn failed(status: u16, message: String) -> ApiError {
    ApiError {
        status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        message,
    }
}

/// The job's result (progress is dropped): JSON, or a file to download.
async fn result(mut rx: UnboundedReceiver<Reply>) -> Result<Response, ApiError> {
    while let Some(reply) = rx.recv().await {
        match reply {
            Reply::Result(v) => return Ok(Json(v).into_response()),
            Reply::File { name, bytes } => {
                let disposition = format!("attachment; filename=\"{name}\"");
                return Ok((
                    [
                        (header::CONTENT_TYPE, "application/octet-stream".to_string()),
                        (header::CONTENT_DISPOSITION, disposition),
                    ],
                    bytes,
                )
                    .into_response());
            }
            Reply::Error { status, message } => return Err(failed(status, message)),
            Reply::Progress(_) | Reply::Grid(_) => {}
        }
    }
    Err(failed(500, "the model's worker stopped".into()))
}

/// The job's replies as server-sent events: `progress`, `grid`, then `result` or `error`.
/// The first reply is awaited before answering, so a request the model refuses (a subject
/// not in the prompt, say) is a 422 with a JSON error, not a stream holding one.
async fn events(mut rx: UnboundedReceiver<Reply>) -> Result<Response, ApiError> {
    let first = match rx.recv().await {
        Some(Reply::Error { status, message }) => return Err(failed(status, message)),
        Some(reply) => reply,
        None => return Err(failed(500, "the model's worker stopped".into())),
    };
    let rest = UnboundedReceiverStream::new(rx);
    let stream = tokio_stream::once(first).chain(rest).map(|reply| {
        let (name, data) = match reply {
            Reply::Progress(v) => ("progress", v),
            Reply::Grid(v) => ("grid", v),
            Reply::Result(v) => ("result", v),
            Reply::File { name, bytes } => {
                ("result", json!({ "file": name, "bytes": bytes.len() }))
            }
            Reply::Error { status, message } => {
                ("error", json!({ "status": status, "error": message }))
            }
        };
        Ok::<_, Infallible>(Event::default().event(name).data(data.to_string()))
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// `value` of `field` must be 1 to `max`.
fn bounded(field: &str, value: usize, max: usize) -> Result<(), ApiError> {
    if value == 0 || value > max {
        return Err(ApiError::bad(format!(
            "`{field}` is {value}; give 1 to {max}"
        )));
    }
    Ok(())
}

fn text(field: &str, value: &str) -> Result<(), ApiError> {
    if value.trim().is_empty() {
        return Err(ApiError::bad(format!("`{field}` is empty")));
    }
    let n = value.chars().count();
    if n > MAX_TEXT {
        return Err(ApiError::bad(format!(
            "`{field}` has {n} characters; at most {MAX_TEXT}"
        )));
    }
    Ok(())
}

/// `GET /api/model`.
pub async fn model(State(state): State<AppState>) -> Result<Response, ApiError> {
    result(submit(&state, Task::Model)?).await
}

/// Body of `POST /api/predict`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PredictBody {
    prompt: String,
    #[serde(default = "five")]
    k: usize,
}

fn five() -> usize {
    5
}

/// `POST /api/predict`: the top-k next tokens.
pub async fn predict(
    State(state): State<AppState>,
    body: Result<Json<PredictBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(b) = body?;
    text("prompt", &b.prompt)?;
    bounded("k", b.k, MAX_TOP)?;
    result(submit(
        &state,
        Task::Predict {
            prompt: b.prompt,
            k: b.k,
        },
    )?)
    .await
}

/// Body of `POST /api/tokens`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokensBody {
    prompt: String,
    subject: String,
    #[serde(default)]
    occurrence: usize,
}

/// `POST /api/tokens`: the prompt's tokens and the subject's.
pub async fn tokens(
    State(state): State<AppState>,
    body: Result<Json<TokensBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(b) = body?;
    text("prompt", &b.prompt)?;
    text("subject", &b.subject)?;
    result(submit(
        &state,
        Task::Tokens {
            prompt: b.prompt,
            subject: b.subject,
            occurrence: b.occurrence,
        },
    )?)
    .await
}

/// Body of `POST /api/trace`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceBody {
    prompt: String,
    subject: String,
    #[serde(default)]
    occurrence: usize,
    /// `hidden`, `mlp`, `attn`; default all three.
    #[serde(default)]
    kinds: Option<Vec<String>>,
    #[serde(default = "ten")]
    samples: usize,
    #[serde(default = "one")]
    seed: u64,
}

fn ten() -> usize {
    10
}

fn one() -> u64 {
    1
}

/// `POST /api/trace`: a causal trace, as server-sent events (`progress`, one `grid` per
/// kind, `result`); closing the connection cancels it.
pub async fn trace(
    State(state): State<AppState>,
    body: Result<Json<TraceBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(b) = body?;
    let kinds = match b.kinds {
        None => TraceKind::ALL.to_vec(),
        Some(names) if names.is_empty() => {
            return Err(ApiError::bad(
                "`kinds` is empty; give hidden, mlp and/or attn",
            ))
        }
        Some(names) => names
            .iter()
            .map(|n| {
                n.parse::<TraceKind>().map_err(|_| {
                    ApiError::bad(format!(
                        "`kinds` has {n:?}; the kinds are hidden, mlp and attn"
                    ))
                })
            })
            .collect::<Result<_, _>>()?,
    };
    let task = trace_task(b.prompt, b.subject, b.occurrence, kinds, b.samples, b.seed)?;
    events(submit(&state, Task::Trace(task))?).await
}

/// A trace's inputs, checked: the prompt and subject as texts, the samples in range.
fn trace_task(
    prompt: String,
    subject: String,
    occurrence: usize,
    kinds: Vec<TraceKind>,
    samples: usize,
    seed: u64,
) -> Result<TraceTask, ApiError> {
    text("prompt", &prompt)?;
    text("subject", &subject)?;
    bounded("samples", samples, MAX_SAMPLES)?;
    Ok(TraceTask {
        prompt,
        subject,
        occurrence,
        kinds,
        samples,
        seed,
    })
}

/// Body of `POST /api/trace/cell`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CellBody {
    prompt: String,
    subject: String,
    #[serde(default)]
    occurrence: usize,
    /// `hidden`, `mlp` or `attn`.
    kind: String,
    /// The prompt position (a grid row's token index).
    token: usize,
    layer: usize,
    #[serde(default = "ten")]
    samples: usize,
    #[serde(default = "one")]
    seed: u64,
    #[serde(default = "five")]
    k: usize,
}

/// `POST /api/trace/cell`: the top-k next tokens of one restored cell (the same noise as
/// the trace with the same inputs), `{"kind", "token", "layer", "top": [{"id", "text",
/// "probability"}]}`.
pub async fn cell(
    State(state): State<AppState>,
    body: Result<Json<CellBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(b) = body?;
    let kind = b.kind.parse::<TraceKind>().map_err(|_| {
        ApiError::bad(format!(
            "`kind` is {:?}; the kinds are hidden, mlp and attn",
            b.kind
        ))
    })?;
    bounded("k", b.k, MAX_TOP)?;
    let trace = trace_task(
        b.prompt,
        b.subject,
        b.occurrence,
        vec![kind],
        b.samples,
        b.seed,
    )?;
    result(submit(
        &state,
        Task::Cell {
            trace,
            token: b.token,
            layer: b.layer,
            k: b.k,
        },
    )?)
    .await
}

/// Body of `POST /api/edit`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditBody {
    prompt: String,
    subject: String,
    target: String,
    #[serde(default)]
    occurrence: usize,
    /// `rome` (default), `r-rome`, `memit`, `alphaedit`, `emmet` or `ft`.
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    checks: Vec<String>,
}

/// `POST /api/edit`: an edit (ROME by default), as server-sent events (`progress`, then `result` with the
/// top-5 before and after for the prompt and each check prompt, and the greedy
/// continuations).
pub async fn edit(
    State(state): State<AppState>,
    body: Result<Json<EditBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(b) = body?;
    text("prompt", &b.prompt)?;
    text("subject", &b.subject)?;
    text("target", &b.target)?;
    use crate::cli::evaluate::EvalMethod;
    use clap::ValueEnum;
    // The editing methods of `evaluate --method`, without `none`.
    let methods = EvalMethod::value_variants()
        .iter()
        .copied()
        .filter(|&m| m != EvalMethod::None);
    let name = b.method.as_deref().unwrap_or("rome");
    let Some(method) = methods.clone().find(|m| m.name() == name) else {
        let names: Vec<&str> = methods.map(EvalMethod::name).collect();
        return Err(ApiError::bad(format!(
            "`method` is {name:?}; the methods are {}",
            names.join(", ")
        )));
    };
    if b.checks.len() > MAX_CHECKS {
        return Err(ApiError::bad(format!(
            "`checks` has {} prompts; at most {MAX_CHECKS}",
            b.checks.len()
        )));
    }
    for (i, c) in b.checks.iter().enumerate() {
        text(&format!("checks[{i}]"), c)?;
    }
    let rx = submit(
        &state,
        Task::Edit(EditTask {
            prompt: b.prompt,
            subject: b.subject,
            occurrence: b.occurrence,
            target: b.target,
            method,
            checks: b.checks,
        }),
    )?;
    events(rx).await
}

/// Body of `POST /api/undo`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UndoBody {
    id: u64,
}

/// `POST /api/undo`: undoes one edit exactly (later edits stay).
pub async fn undo(
    State(state): State<AppState>,
    body: Result<Json<UndoBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(b) = body?;
    result(submit(&state, Task::Undo { id: b.id })?).await
}

/// `GET /api/edits`: the edits in the model, oldest first.
pub async fn edits(State(state): State<AppState>) -> Result<Response, ApiError> {
    result(submit(&state, Task::Edits)?).await
}

/// `GET /api/edits/{id}/delta.safetensors`: the edit's weight change (as `factscope edit
/// --save-delta` writes it).
pub async fn delta(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id: u64 = id
        .parse()
        .map_err(|_| ApiError::bad(format!("edit id {id:?} is not a number")))?;
    result(submit(&state, Task::Delta { id })?).await
}

/// `GET /api/model.gguf`: the model with every edit in it, as GGUF (edited matrices
/// re-quantised to their own type; 409 while there are no edits).
pub async fn gguf(State(state): State<AppState>) -> Result<Response, ApiError> {
    result(submit(&state, Task::Gguf)?).await
}
