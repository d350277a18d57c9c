//! `factscope serve` against the bundled model: the JSON API on an ephemeral port (predict,
//! tokens, trace as server-sent events, edit, edits, delta download, exact undo, and bad
//! requests answered 4xx with a JSON error naming the field), and with the `browser-tests`
//! feature a trace link opened in headless Chromium, driven over the DevTools protocol.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
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

fn serve() -> Server {
    let model =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        model.is_file(),
        "the bundled model is absent: run `bash scripts/setup.sh`"
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_factscope"))
        .args(["serve", "--device", "cpu", "--port", "0", "--model"])
        .arg(&model)
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

#[test]
fn bad_requests_are_4xx_with_a_json_error_naming_the_field() {
    let server = serve();
    let port = server.port;
    let cases: [(&str, &str, &str, u16, &str); 11] = [
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
    // Still serving after all of it.
    assert_eq!(top1(port, PROMPT).0, " Paris");
}

/// Opens a trace link in headless Chromium and waits, through the DevTools protocol, for
/// the page to draw the three heatmaps; checks the answer and the cells, and saves a
/// screenshot to `target/serve-trace.png`.
#[cfg(feature = "browser-tests")]
#[test]
fn a_trace_link_draws_three_heatmaps_in_chromium() {
    use base64::Engine;
    let server = serve();
    let url = format!(
        "http://127.0.0.1:{}/?prompt={}&subject={}&samples=2&run=trace",
        server.port,
        PROMPT.replace(' ', "%20"),
        SUBJECT.replace(' ', "%20")
    );
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
        .arg(&url)
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
    let (mut socket, _) = tungstenite::connect(page).unwrap();
    let mut call = |id: u64, method: &str, params: Value| -> Value {
        let msg = json!({ "id": id, "method": method, "params": params });
        socket
            .send(tungstenite::Message::text(msg.to_string()))
            .unwrap();
        loop {
            let reply: Value = match socket.read().unwrap() {
                tungstenite::Message::Text(t) => serde_json::from_str(t.as_str()).unwrap(),
                _ => continue,
            };
            if reply["id"] == id {
                return reply;
            }
        }
    };
    // The page must have loaded before a promise can wait in it (a navigation would
    // destroy the context the promise runs in).
    let mut loaded = false;
    for i in 0..200u64 {
        let r = call(
            100 + i,
            "Runtime.evaluate",
            json!({ "expression": "location.search + ' ' + document.readyState", "returnByValue": true }),
        );
        let v = r["result"]["result"]["value"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if v.contains("run=trace") && v.ends_with("complete") {
            loaded = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(loaded, "the page did not load");
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
    let reply = call(
        1,
        "Runtime.evaluate",
        json!({ "expression": wait, "awaitPromise": true, "returnByValue": true }),
    );
    let seen: Value = serde_json::from_str(
        reply["result"]["result"]["value"]
            .as_str()
            .unwrap_or_else(|| panic!("{reply}")),
    )
    .unwrap();
    let shot = call(2, "Page.captureScreenshot", json!({ "format": "png" }));
    if let Some(data) = shot["result"]["data"].as_str() {
        let png = base64::engine::general_purpose::STANDARD
            .decode(data)
            .unwrap();
        let _ = std::fs::write(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("target/serve-trace.png"),
            png,
        );
    }
    let _ = chromium.kill();
    let _ = chromium.wait();
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
