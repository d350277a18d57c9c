//! `factscope serve` against the bundled model: the JSON API on an ephemeral port (predict,
//! tokens, trace as server-sent events, edit, edits, delta download, exact undo; bad
//! requests, empty fields, 100 KB and 2 MB bodies answered 4xx with a JSON error naming the
//! field; concurrent clients answered in full or `busy`; a folder model's edits as a new
//! GGUF), and with the `browser-tests`
//! feature a trace link and an edit link (then its undo button) opened in headless Chromium,
//! driven over the DevTools protocol.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

const PROMPT: &str = "The Eiffel Tower is located in the city of";
const SUBJECT: &str = "The Eiffel Tower";

/// A running `factscope serve`, stopped when dropped.
struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn bundled() -> PathBuf {
    let model =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        model.is_file(),
        "the bundled model is absent: run `bash scripts/setup.sh`"
    );
    model
}

fn serve() -> Server {
    serve_model(&bundled())
}

fn serve_model(model: &Path) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_factscope"))
        .args(["serve", "--device", "cpu", "--port", "0", "--model"])
        .arg(model)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .split("127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    Server { child, port }
}

/// One HTTP/1.1 request: the status and the body (chunked bodies decoded).
fn http(port: u16, method: &str, path: &str, body: Option<&str>) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(600))).unwrap();
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    // Read what the headers promise, not to the end: Chromium's DevTools server keeps the
    // connection open.
    let mut r = BufReader::new(s);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        if line == "\r\n" || line.is_empty() {
            break;
        }
        head.push_str(&line.to_lowercase());
    }
    let status = head[9..12].parse().unwrap();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    let mut out = Vec::new();
    if let Some(n) = length {
        out.resize(n, 0);
        r.read_exact(&mut out).unwrap();
    } else if head.contains("transfer-encoding: chunked") {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).unwrap();
            let size = usize::from_str_radix(size.trim(), 16).unwrap();
            let mut chunk = vec![0; size + 2];
            r.read_exact(&mut chunk).unwrap();
            if size == 0 {
                break;
            }
            out.extend_from_slice(&chunk[..size]);
        }
    } else {
        r.read_to_end(&mut out).unwrap();
    }
    (status, out)
}

/// Posts a body of `size` bytes to `/api/predict`, tolerating the server closing the
/// connection before it is all sent: the status, if the server's answer could be read.
fn refused_body(port: u16, size: usize) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let head = format!(
        "POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {size}\r\n\r\n"
    );
    let _ = s.write_all(head.as_bytes());
    let chunk = vec![b'x'; 64 * 1024];
    let mut sent = 0;
    while sent < size {
        if s.write_all(&chunk[..chunk.len().min(size - sent)]).is_err() {
            break;
        }
        sent += chunk.len();
    }
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    text.strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
}

fn post(port: u16, path: &str, body: Value) -> (u16, Value) {
    let (status, bytes) = http(port, "POST", path, Some(&body.to_string()));
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Server-sent events of a POST: `(event, data)` pairs.
fn events(port: u16, path: &str, body: Value) -> (u16, Vec<(String, Value)>) {
    let (status, bytes) = http(port, "POST", path, Some(&body.to_string()));
    let text = String::from_utf8(bytes).unwrap();
    let mut out = Vec::new();
    for block in text.split("\n\n") {
        let mut name = String::from("message");
        let mut data = String::new();
        for line in block.lines() {
            if let Some(n) = line.strip_prefix("event:") {
                name = n.trim().to_string();
            } else if let Some(d) = line.strip_prefix("data:") {
                data.push_str(d.trim());
            }
        }
        if !data.is_empty() {
            out.push((name, serde_json::from_str(&data).unwrap_or(json!(data))));
        }
    }
    (status, out)
}

fn top1(port: u16, prompt: &str) -> (String, f64) {
    let (status, p) = post(port, "/api/predict", json!({ "prompt": prompt, "k": 1 }));
    assert_eq!(status, 200, "{p}");
    (
        p["top"][0]["text"].as_str().unwrap().to_string(),
        p["top"][0]["probability"].as_f64().unwrap(),
    )
}

#[test]
fn api_traces_edits_and_undoes_exactly() {
    let server = serve();
    let port = server.port;
    let (status, model) = http(port, "GET", "/api/model", None);
    let model: Value = serde_json::from_slice(&model).unwrap();
    assert_eq!(status, 200);
    assert_eq!(model["layers"], 30);
    assert!(
        model["parameters"].as_i64().unwrap() > 100_000_000,
        "{model}"
    );

    let (page_status, page) = http(port, "GET", "/", None);
    assert_eq!(page_status, 200);
    assert!(String::from_utf8_lossy(&page).contains("factscope explorer"));

    let (answer, p_before) = top1(port, PROMPT);
    assert_eq!(answer, " Paris");

    let (status, tokens) = post(
        port,
        "/api/tokens",
        json!({ "prompt": "Paris is in France. Paris is big", "subject": "Paris", "occurrence": 1 }),
    );
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["occurrences"], 2);
    assert_eq!(tokens["subject_range"], json!([5, 6]));

    // A trace: progress, one grid per kind asked for, then the result.
    let (status, evs) = events(
        port,
        "/api/trace",
        json!({ "prompt": PROMPT, "subject": SUBJECT, "samples": 2, "kinds": ["hidden", "mlp"] }),
    );
    assert_eq!(status, 200);
    let grids: Vec<&Value> = evs
        .iter()
        .filter(|(n, _)| n == "grid")
        .map(|(_, d)| d)
        .collect();
    assert_eq!(grids.len(), 2, "{evs:?}");
    assert_eq!(grids[0]["kind"], "hidden");
    assert_eq!(grids[1]["kind"], "mlp");
    assert_eq!(grids[0]["answer"]["text"], " Paris");
    assert_eq!(grids[0]["scores"][0].as_array().unwrap().len(), 30);
    assert!(evs.iter().any(|(n, _)| n == "progress"));
    assert_eq!(evs.last().unwrap().0, "result");
    // One cell's restored run: its answer probability is the grid's value there.
    let row = 2; // " iffel", the last-but-one subject token
    let layer = 3;
    let (status, cell) = post(
        port,
        "/api/trace/cell",
        json!({ "prompt": PROMPT, "subject": SUBJECT, "samples": 2, "kind": "mlp",
                "token": grids[1]["rows"][row], "layer": layer, "k": 50 }),
    );
    assert_eq!(status, 200, "{cell}");
    let want = grids[1]["scores"][row][layer].as_f64().unwrap();
    let got = cell["top"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["text"] == " Paris")
        .map(|c| c["probability"].as_f64().unwrap())
        .unwrap_or_else(|| panic!("{cell}"));
    assert!((got - want).abs() < 1e-4, "{got} vs {want}");

    // An edit, then its undo restores the very probabilities of before.
    let (status, evs) = events(
        port,
        "/api/edit",
        json!({ "prompt": PROMPT, "subject": SUBJECT, "target": "Rome",
                "checks": ["The Eiffel Tower can be found in"] }),
    );
    assert_eq!(status, 200);
    let (name, result) = evs.last().unwrap();
    assert_eq!(name, "result", "{evs:?}");
    assert_eq!(result["prompts"].as_array().unwrap().len(), 2);
    assert_eq!(result["prompts"][0]["before"]["top"][0]["text"], " Paris");
    assert_eq!(result["prompts"][0]["after"]["top"][0]["text"], " Rome");
    assert!(result["continuation"]["after"]
        .as_str()
        .unwrap()
        .contains("Rome"));
    let id = result["id"].as_u64().unwrap();
    assert_eq!(top1(port, PROMPT).0, " Rome");
    let (status, list) = http(port, "GET", "/api/edits", None);
    let list: Value = serde_json::from_slice(&list).unwrap();
    assert_eq!(status, 200);
    assert_eq!(list["edits"][0]["target"], "Rome");
    let (status, delta) = http(
        port,
        "GET",
        &format!("/api/edits/{id}/delta.safetensors"),
        None,
    );
    assert_eq!(status, 200);
    let header_len = u64::from_le_bytes(delta[..8].try_into().unwrap()) as usize;
    let header: Value = serde_json::from_slice(&delta[8..8 + header_len]).unwrap();
    assert!(header.get("delta.0.u").is_some(), "{header}");
    // The edited model as GGUF: a GGUF file as large as the bundled one, whose bytes differ.
    let (status, gguf) = http(port, "GET", "/api/model.gguf", None);
    assert_eq!(status, 200);
    let original = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("models/SmolLM2-135M-Instruct.Q4_1.gguf"),
    )
    .unwrap();
    assert_eq!(&gguf[..4], b"GGUF");
    assert_eq!(gguf.len(), original.len());
    assert!(gguf != original);
    let (status, undone) = post(port, "/api/undo", json!({ "id": id }));
    assert_eq!(status, 200, "{undone}");
    assert_eq!(undone["edits"], json!([]));
    assert_eq!(top1(port, PROMPT), (" Paris".to_string(), p_before));
}

/// A model served from a Hugging Face folder (the bundled one, written as a folder) has
/// its edits downloaded as a whole new GGUF, with F16 matrices, that predicts the edit.
#[test]
fn a_folder_model_s_edits_download_as_a_new_gguf() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("smollm2");
    let m = gpt_core::load_model(&bundled(), gpt_core::LoadOptions::default()).unwrap();
    m.model.save_hf(&folder, &m.tokenizer).unwrap();
    drop(m);
    // As `edit --save-gguf`, the download carries the folder's chat template and name.
    let template = "{% for m in messages %}{{ m['content'] }}{% endfor %}";
    std::fs::write(
        folder.join("tokenizer_config.json"),
        json!({ "chat_template": template }).to_string(),
    )
    .unwrap();
    let server = serve_model(&folder);
    let port = server.port;
    let (status, evs) = events(
        port,
        "/api/edit",
        json!({ "prompt": PROMPT, "subject": SUBJECT, "target": "Rome" }),
    );
    assert_eq!(status, 200);
    assert_eq!(evs.last().unwrap().0, "result", "{evs:?}");
    let (status, bytes) = http(port, "GET", "/api/model.gguf", None);
    assert_eq!(
        status,
        200,
        "{}",
        String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
    );
    let file = gguf::GgufFile::from_bytes(&bytes).unwrap();
    assert_eq!(file.architecture(), Some("llama"));
    let text = |key: &str| file.get(key).and_then(|v| v.as_str()).map(str::to_string);
    assert_eq!(text("tokenizer.chat_template").as_deref(), Some(template));
    assert_eq!(text("general.name").as_deref(), Some("smollm2"));
    let ffn = file.tensor("blk.4.ffn_down.weight").unwrap();
    assert_eq!(ffn.ggml_type, gguf::GgmlType::F16);
    let path = dir.path().join("edited.gguf");
    std::fs::write(&path, &bytes).unwrap();
    let written = gpt_core::load_model(&path, gpt_core::LoadOptions::default()).unwrap();
    let top = gpt_core::top_k(&written.model, &written.tokenizer, PROMPT, 1).unwrap();
    assert_eq!(top.top[0].text, " Rome", "{top:?}");
}

#[test]
fn bad_requests_are_4xx_with_a_json_error_naming_the_field() {
    let server = serve();
    let port = server.port;
    let cases: [(&str, &str, &str, u16, &str); 13] = [
        (
            "POST",
            "/api/predict",
            r#"{"prompt": "  "}"#,
            400,
            "`prompt` is empty",
        ),
        (
            "POST",
            "/api/edit",
            r#"{"prompt": "a b", "subject": "a", "target": ""}"#,
            400,
            "`target` is empty",
        ),
        (
            "POST",
            "/api/predict",
            r#"{"k": 3}"#,
            422,
            "missing field `prompt`",
        ),
        (
            "POST",
            "/api/predict",
            r#"{"prompt": 3}"#,
            422,
            "prompt: invalid type",
        ),
        (
            "POST",
            "/api/predict",
            r#"{"prompt": "x", "k": 0}"#,
            400,
            "`k`",
        ),
        ("POST", "/api/predict", "{not json", 400, "JSON"),
        (
            "POST",
            "/api/trace",
            r#"{"prompt": "x y", "subject": "y", "kinds": ["mlpp"]}"#,
            400,
            "`kinds`",
        ),
        (
            "POST",
            "/api/trace",
            r#"{"prompt": "The tower", "subject": "Eiffel", "samples": 2}"#,
            422,
            "Eiffel",
        ),
        (
            "POST",
            "/api/edit",
            r#"{"prompt": "a b", "subject": "a", "target": "c", "method": "magic"}"#,
            400,
            "`method` is \"magic\"; the methods are rome, r-rome, memit",
        ),
        ("POST", "/api/undo", r#"{"id": 99}"#, 404, "no edit 99"),
        (
            "POST",
            "/api/trace/cell",
            r#"{"prompt": "x y", "subject": "y", "kind": "mlp", "token": 0, "layer": 99}"#,
            422,
            "outside the grid",
        ),
        ("GET", "/etc/passwd", "", 404, "no such page"),
        ("GET", "/api/model.gguf", "", 409, "no edits"),
    ];
    for (method, path, body, want, names) in cases {
        let (status, bytes) = http(port, method, path, Some(body));
        let error: Value = serde_json::from_slice(&bytes).unwrap();
        let message = error["error"].as_str().unwrap_or_default();
        assert_eq!(status, want, "{method} {path} {body}: {error}");
        assert!(message.contains(names), "{path} {body}: {message}");
    }
    let long = "x".repeat(1001);
    let (status, error) = post(port, "/api/predict", json!({ "prompt": long }));
    assert_eq!(status, 400);
    assert!(error["error"].as_str().unwrap().contains("1001 characters"));
    let huge = "x".repeat(100_000);
    let (status, _) = http(port, "POST", "/api/predict", Some(&huge));
    assert_eq!(status, 413);
    // 2 MB: the server answers 413 as soon as the headers announce it and closes, so the
    // client may not even get to send it all (a broken pipe), and where the close resets
    // the connection the answer itself can be lost — either way it is refused unread (a
    // body that was read would get 400: it is not JSON).
    let answer = refused_body(port, 2_000_000);
    assert!(matches!(answer, Some(413) | None), "{answer:?}");
    // Concurrent requests: 12 at once (predictions and one-kind traces) from as many
    // clients. One job runs at a time with a queue of four, so each is answered either
    // in full or with 503 `busy` — never dropped or garbled.
    let clients: Vec<_> = (0..12)
        .map(|i| {
            std::thread::spawn(move || {
                if i % 3 == 0 {
                    let body = json!({ "prompt": PROMPT, "subject": SUBJECT, "kinds": ["mlp"], "samples": 2 });
                    let (status, events) = events(port, "/api/trace", body);
                    let done = events.iter().any(|(name, _)| name == "result");
                    (status, done, events.len())
                } else {
                    let (status, p) = post(port, "/api/predict", json!({ "prompt": PROMPT, "k": 1 }));
                    let done = p["top"][0]["text"] == " Paris";
                    let busy = p["error"].as_str().is_some_and(|e| e.contains("busy"));
                    (status, done || (status == 503 && busy), 1)
                }
            })
        })
        .collect();
    let answers: Vec<(u16, bool, usize)> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    for (i, &(status, complete, _)) in answers.iter().enumerate() {
        assert!(
            (status == 200 && complete) || status == 503,
            "client {i}: {answers:?}"
        );
    }
    assert!(answers.iter().any(|a| a.0 == 200), "{answers:?}");
    // Still serving after all of it.
    assert_eq!(top1(port, PROMPT).0, " Paris");
}

/// An edit whose client goes away mid-optimisation is stopped at its next step: the model
/// keeps no edit and answers as before, and the server goes on serving.
#[test]
fn an_edit_whose_client_leaves_is_cancelled() {
    let server = serve();
    let port = server.port;
    let (before, p_before) = top1(port, PROMPT);
    let body = json!({ "prompt": PROMPT, "subject": SUBJECT, "target": "Rome" }).to_string();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(600))).unwrap();
    write!(
        s,
        "POST /api/edit HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    // Wait for the first optimisation step, then leave.
    let mut r = BufReader::new(s);
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        assert!(r.read_line(&mut line).unwrap() > 0, "stream ended: {seen}");
        seen.push_str(&line);
        if line.contains("\"stage\":\"v* optimisation\"") && line.contains("\"done\":1") {
            break;
        }
    }
    drop(r);
    // Queued behind the edit, answered once it has stopped.
    let (after, p_after) = top1(port, PROMPT);
    assert_eq!((after.as_str(), p_after), (before.as_str(), p_before));
    let (status, bytes) = http(port, "GET", "/api/edits", None);
    assert_eq!(status, 200);
    let edits: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(edits["edits"], json!([]), "{edits}");
}

/// Headless Chromium on a page, driven over the DevTools protocol (tungstenite), closed when
/// dropped.
#[cfg(feature = "browser-tests")]
struct Browser {
    chromium: Child,
    socket: tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>,
    next_id: u64,
    _profile: tempfile::TempDir,
}

#[cfg(feature = "browser-tests")]
impl Browser {
    /// Starts Chromium on `url` and waits until the page has loaded with `loaded_when` in its
    /// query (a promise must not wait in a page that is still navigating: the navigation
    /// would destroy the context it runs in).
    fn open(url: &str, loaded_when: &str) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let mut chromium = Command::new("/usr/bin/chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-port=0",
                "--window-size=1100,1600",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(url)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("starting /usr/bin/chromium (install it: apt-get install chromium)");
        let stderr = BufReader::new(chromium.stderr.take().unwrap());
        let ws = stderr
            .lines()
            .map_while(Result::ok)
            .find_map(|l| l.split("DevTools listening on ").nth(1).map(str::to_string))
            .expect("Chromium's DevTools address");
        let devtools_port: u16 = ws
            .split(':')
            .nth(2)
            .and_then(|p| p.split('/').next())
            .and_then(|p| p.parse().ok())
            .unwrap();
        let (_, targets) = http(devtools_port, "GET", "/json/list", None);
        let targets: Value = serde_json::from_slice(&targets).unwrap();
        let page = targets
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == "page")
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .unwrap()
            .to_string();
        let (socket, _) = tungstenite::connect(page).unwrap();
        let mut browser = Browser {
            chromium,
            socket,
            next_id: 1,
            _profile: profile,
        };
        let mut loaded = false;
        for _ in 0..200 {
            let v = browser.eval("location.search + ' ' + document.readyState");
            let v = v.as_str().unwrap_or_default();
            if v.contains(loaded_when) && v.ends_with("complete") {
                loaded = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(loaded, "the page did not load");
        browser
    }

    /// One DevTools call; its reply.
    fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let msg = json!({ "id": id, "method": method, "params": params });
        self.socket
            .send(tungstenite::Message::text(msg.to_string()))
            .unwrap();
        loop {
            let reply: Value = match self.socket.read().unwrap() {
                tungstenite::Message::Text(t) => serde_json::from_str(t.as_str()).unwrap(),
                _ => continue,
            };
            if reply["id"] == id {
                return reply;
            }
        }
    }

    /// The value of a JavaScript expression in the page (a promise is awaited).
    fn eval(&mut self, expression: &str) -> Value {
        let reply = self.call(
            "Runtime.evaluate",
            json!({ "expression": expression, "awaitPromise": true, "returnByValue": true }),
        );
        reply["result"]["result"]["value"].clone()
    }

    /// The JSON an expression's promise resolves to (as a string), parsed.
    fn eval_json(&mut self, expression: &str) -> Value {
        let v = self.eval(expression);
        serde_json::from_str(v.as_str().unwrap_or_else(|| panic!("{v}"))).unwrap()
    }

    /// Saves a screenshot to `target/{name}`.
    fn screenshot(&mut self, name: &str) {
        use base64::Engine;
        let shot = self.call("Page.captureScreenshot", json!({ "format": "png" }));
        if let Some(data) = shot["result"]["data"].as_str() {
            let png = base64::engine::general_purpose::STANDARD
                .decode(data)
                .unwrap();
            let _ = std::fs::write(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("target")
                    .join(name),
                png,
            );
        }
    }
}

#[cfg(feature = "browser-tests")]
impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.chromium.kill();
        let _ = self.chromium.wait();
    }
}

/// A page link with `prompt`, `subject` and `run`.
#[cfg(feature = "browser-tests")]
fn link(port: u16, extra: &str) -> String {
    format!(
        "http://127.0.0.1:{port}/?prompt={}&subject={}&{extra}",
        PROMPT.replace(' ', "%20"),
        SUBJECT.replace(' ', "%20")
    )
}

/// Opens a trace link in headless Chromium and waits, through the DevTools protocol, for
/// the page to draw the three heatmaps; checks the answer and the cells, and saves a
/// screenshot to `target/serve-trace.png`.
#[cfg(feature = "browser-tests")]
#[test]
fn a_trace_link_draws_three_heatmaps_in_chromium() {
    let server = serve();
    let mut page = Browser::open(&link(server.port, "samples=2&run=trace"), "run=trace");
    // Waits (in the page) until three heatmaps are drawn, or 300 s pass.
    let wait = r##"new Promise((resolve) => {
        const t0 = Date.now();
        const poll = () => {
            const maps = document.querySelectorAll(".map");
            const status = document.getElementById("status").textContent;
            if (maps.length === 3 || status.startsWith("subject") || Date.now() - t0 > 300000) {
                resolve(JSON.stringify({
                    kinds: Array.from(maps).map((m) => m.dataset.kind),
                    cells: document.querySelectorAll("rect.cell").length,
                    headings: Array.from(document.querySelectorAll(".map h3")).map((h) => h.textContent),
                    subject: Array.from(document.querySelectorAll("#tokens span.subject")).map((s) => s.textContent).join(""),
                    status,
                    url: location.search,
                }));
            } else { setTimeout(poll, 250); }
        };
        poll();
    })"##;
    let seen = page.eval_json(wait);
    page.screenshot("serve-trace.png");
    assert_eq!(seen["kinds"], json!(["hidden", "mlp", "attn"]), "{seen}");
    // 10 tokens × 30 layers per heatmap.
    assert_eq!(seen["cells"], 900, "{seen}");
    assert!(
        seen["headings"][0].as_str().unwrap().contains("\" Paris\""),
        "{seen}"
    );
    assert_eq!(seen["subject"], SUBJECT, "{seen}");
    assert!(
        seen["status"].as_str().unwrap().starts_with("traced"),
        "{seen}"
    );
}

/// Opens an edit link in headless Chromium: the page edits the model (ROME, " Rome"), shows
/// the prompt's top tokens before and after and lists the edit; clicking its undo button
/// removes it, and the server's model predicts " Paris" again. Saves
/// `target/serve-edit.png` (after the edit) and `target/serve-undo.png`.
#[cfg(feature = "browser-tests")]
#[test]
fn an_edit_link_edits_and_its_undo_button_restores_in_chromium() {
    let server = serve();
    let (before, p_before) = top1(server.port, PROMPT);
    assert_eq!(before, " Paris");
    let mut page = Browser::open(&link(server.port, "target=Rome&run=edit"), "run=edit");
    // Waits until the edit's result is shown (or an error, or 300 s).
    let wait_edit = r##"new Promise((resolve) => {
        const t0 = Date.now();
        const poll = () => {
            const status = document.getElementById("status").textContent;
            if (status.startsWith("edited") || document.getElementById("status").classList.contains("error") || Date.now() - t0 > 300000) {
                const rows = Array.from(document.querySelectorAll("#compare tbody tr")).map((r) => Array.from(r.cells).map((c) => c.textContent));
                resolve(JSON.stringify({
                    status,
                    rows,
                    edits: Array.from(document.querySelectorAll("#edits button[data-undo]")).map((b) => b.dataset.undo),
                    continuation: document.getElementById("continuations").textContent,
                    gguf_hidden: document.getElementById("gguf").hidden,
                }));
            } else { setTimeout(poll, 250); }
        };
        poll();
    })"##;
    let edited = page.eval_json(wait_edit);
    page.screenshot("serve-edit.png");
    assert!(
        edited["status"].as_str().unwrap().starts_with("edited"),
        "{edited}"
    );
    let first = &edited["rows"][0];
    assert_eq!(first[0], PROMPT, "{edited}");
    assert!(
        first[1].as_str().unwrap().starts_with("\" Paris\""),
        "{edited}"
    );
    assert!(
        first[2].as_str().unwrap().starts_with("\" Rome\""),
        "{edited}"
    );
    assert_eq!(edited["edits"], json!(["1"]), "{edited}");
    assert_eq!(edited["gguf_hidden"], false, "{edited}");
    assert!(
        edited["continuation"].as_str().unwrap().contains("Rome"),
        "{edited}"
    );
    assert_eq!(top1(server.port, PROMPT).0, " Rome");
    // Undo from the page.
    let undo = r##"new Promise((resolve) => {
        document.querySelector('#edits button[data-undo="1"]').click();
        const t0 = Date.now();
        const poll = () => {
            const status = document.getElementById("status").textContent;
            if (status.includes("undone") || Date.now() - t0 > 60000) {
                resolve(JSON.stringify({
                    status,
                    edits: document.getElementById("edits").textContent,
                    note: document.getElementById("edit-note").textContent,
                    gguf_hidden: document.getElementById("gguf").hidden,
                }));
            } else { setTimeout(poll, 100); }
        };
        poll();
    })"##;
    let undone = page.eval_json(undo);
    page.screenshot("serve-undo.png");
    assert_eq!(undone["status"], "edit 1 undone", "{undone}");
    assert_eq!(undone["edits"], "none", "{undone}");
    assert!(
        undone["note"].as_str().unwrap().contains("Undone"),
        "{undone}"
    );
    assert_eq!(undone["gguf_hidden"], true, "no edits, no GGUF download");
    let (after, p_after) = top1(server.port, PROMPT);
    assert_eq!(after, " Paris");
    assert_eq!(p_after, p_before, "undo restores the weights exactly");
}
