//! A real headless Chromium driven over W3C WebDriver: `chromedriver` started on a free port of
//! 127.0.0.1, a session with a fresh profile, and the few commands the console tests use
//! (navigate, find, click, type, read text, run a script, screenshot, resize). Every wait
//! polls a condition until a deadline; none sleeps a fixed time.
//!
//! Chromium and chromedriver come from Debian's `chromium` and `chromium-driver` packages
//! (`scripts/test.sh` installs them when it runs as root); `WAGATE_CHROMIUM` and
//! `WAGATE_CHROMEDRIVER` name other binaries. Without them, [`Browser::start`] fails the test
//! with a message saying so: a browser test that cannot run must not pass.

use std::future::Future;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

/// The key W3C WebDriver names an element reference with.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// How long any wait may take: room for a loaded 2-core machine (as [`crate::wait`]).
pub const PATIENCE: Duration = Duration::from_secs(60);

const POLL: Duration = Duration::from_millis(100);

/// A WebDriver error answer.
#[derive(Debug, Clone)]
pub struct WebDriverError {
    /// `no such element`, `stale element reference`, …
    pub error: String,
    /// The driver's message.
    pub message: String,
}

/// An element of the current page.
#[derive(Debug, Clone)]
pub struct Element(String);

/// A running Chromium under chromedriver, with one session.
#[derive(Debug)]
pub struct Browser {
    http: reqwest::Client,
    port: u16,
    session: String,
    driver: Child,
    profile: PathBuf,
}

fn binary(var: &str, candidates: &[&str]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(var) {
        return Some(PathBuf::from(path));
    }
    candidates.iter().map(PathBuf::from).find(|p| p.exists())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session of `width`×`height`.
    pub async fn start(width: u32, height: u32) -> Self {
        let missing = "the console browser test needs Chromium and chromedriver: \
             `apt-get install -y chromium chromium-driver` (scripts/test.sh does it when run as \
             root), or set WAGATE_CHROMIUM and WAGATE_CHROMEDRIVER";
        let chromium = binary(
            "WAGATE_CHROMIUM",
            &["/usr/bin/chromium", "/usr/bin/chromium-browser"],
        )
        .unwrap_or_else(|| panic!("Chromium not found: {missing}"));
        let chromedriver = binary("WAGATE_CHROMEDRIVER", &["/usr/bin/chromedriver"])
            .unwrap_or_else(|| panic!("chromedriver not found: {missing}"));
        let port = free_port();
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}: {missing}", chromedriver.display()));
        let profile =
            std::env::temp_dir().join(format!("wagate-chromium-{}-{port}", std::process::id()));
        let http = aws_adapters::http::client_builder()
            .timeout(Duration::from_secs(120))
            .build()
            .unwrap();
        let mut browser = Self {
            http,
            port,
            session: String::new(),
            driver,
            profile,
        };
        let ready = crate::wait::within_async(PATIENCE, || async {
            browser
                .raw(reqwest::Method::GET, "/status", None)
                .await
                .is_ok_and(|v| v["ready"] == true)
        })
        .await;
        assert!(ready, "chromedriver did not become ready on port {port}");
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--password-store=basic",
            &format!("--window-size={width},{height}"),
            &format!("--user-data-dir={}", browser.profile.display()),
        ];
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let created = browser
            .raw(reqwest::Method::POST, "/session", Some(capabilities))
            .await
            .unwrap_or_else(|e| panic!("no Chromium session ({}): {missing}", e.message));
        browser.session = created["sessionId"]
            .as_str()
            .expect("a session id")
            .to_owned();
        browser
            .command(
                reqwest::Method::POST,
                "/timeouts",
                json!({"script": 60_000, "pageLoad": 60_000}),
            )
            .await;
        browser
    }

    async fn raw(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, WebDriverError> {
        let url = format!("http://127.0.0.1:{}{path}", self.port);
        let mut request = self.http.request(method, url);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.map_err(|e| WebDriverError {
            error: "transport".into(),
            message: e.to_string(),
        })?;
        let ok = response.status().is_success();
        let text = response.text().await.map_err(|e| WebDriverError {
            error: "transport".into(),
            message: e.to_string(),
        })?;
        let value: Value = serde_json::from_str(&text).map_err(|e| WebDriverError {
            error: "not json".into(),
            message: e.to_string(),
        })?;
        let value = value.get("value").cloned().unwrap_or(Value::Null);
        if ok {
            Ok(value)
        } else {
            Err(WebDriverError {
                error: value["error"].as_str().unwrap_or("unknown").to_owned(),
                message: value["message"].as_str().unwrap_or_default().to_owned(),
            })
        }
    }

    /// A session command; `Err` for a WebDriver error answer.
    pub async fn try_command(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> Result<Value, WebDriverError> {
        let body = (method == reqwest::Method::POST).then_some(body);
        self.raw(method, &format!("/session/{}{path}", self.session), body)
            .await
    }

    /// A session command that must succeed.
    pub async fn command(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        self.try_command(method, path, body)
            .await
            .unwrap_or_else(|e| panic!("WebDriver {path}: {}: {}", e.error, e.message))
    }

    /// Opens `url`.
    pub async fn goto(&self, url: &str) {
        self.command(reqwest::Method::POST, "/url", json!({"url": url}))
            .await;
    }

    /// The current URL.
    pub async fn url(&self) -> String {
        self.command(reqwest::Method::GET, "/url", Value::Null)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and answers its result.
    pub async fn script(&self, script: &str, args: Value) -> Value {
        self.command(
            reqwest::Method::POST,
            "/execute/sync",
            json!({"script": script, "args": args}),
        )
        .await
    }

    /// Runs `script`, which calls `arguments[arguments.length - 1]` with its result.
    pub async fn script_async(&self, script: &str, args: Value) -> Value {
        self.command(
            reqwest::Method::POST,
            "/execute/async",
            json!({"script": script, "args": args}),
        )
        .await
    }

    /// The first element matching `css`, if there is one now.
    pub async fn find(&self, css: &str) -> Option<Element> {
        let found = self
            .try_command(
                reqwest::Method::POST,
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await
            .ok()?;
        found[ELEMENT].as_str().map(|id| Element(id.to_owned()))
    }

    /// The text of the first element matching `css` ("" if none, or if it went stale).
    pub async fn text(&self, css: &str) -> String {
        let Some(el) = self.find(css).await else {
            return String::new();
        };
        self.try_command(
            reqwest::Method::GET,
            &format!("/element/{}/text", el.0),
            Value::Null,
        )
        .await
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
    }

    /// The visible text of the whole page.
    pub async fn page_text(&self) -> String {
        self.script("return document.body.innerText;", json!([]))
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Polls `check` until it answers `Some`; fails naming `what` (with the page's text) after
    /// [`PATIENCE`].
    pub async fn until<T, F, Fut>(&self, what: &str, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(value) = check().await {
                return value;
            }
            if Instant::now() >= deadline {
                let text = self.page_text().await;
                panic!(
                    "timed out after {PATIENCE:?} waiting for {what}; at {} the page reads:\n{text}",
                    self.url().await
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until an element matching `css` is displayed; answers it.
    pub async fn wait(&self, css: &str) -> Element {
        self.until(&format!("`{css}` to be displayed"), || async {
            let el = self.find(css).await?;
            let shown = self
                .try_command(
                    reqwest::Method::GET,
                    &format!("/element/{}/displayed", el.0),
                    Value::Null,
                )
                .await
                .ok()?;
            (shown == true).then_some(el)
        })
        .await
    }

    /// Waits until the element matching `css` contains `needle`; answers its whole text.
    pub async fn wait_text(&self, css: &str, needle: &str) -> String {
        self.until(&format!("`{css}` to contain {needle:?}"), || async {
            let text = self.text(css).await;
            text.contains(needle).then_some(text)
        })
        .await
    }

    /// Waits until nothing matches `css`.
    pub async fn wait_gone(&self, css: &str) {
        self.until(&format!("`{css}` to be gone"), || async {
            self.find(css).await.is_none().then_some(())
        })
        .await;
    }

    /// Clicks the element matching `css` (waiting for it to be displayed).
    pub async fn click(&self, css: &str) {
        let el = self.wait(css).await;
        self.command(
            reqwest::Method::POST,
            &format!("/element/{}/click", el.0),
            json!({}),
        )
        .await;
    }

    /// Replaces the value of the field matching `css` with `text`.
    pub async fn fill(&self, css: &str, text: &str) {
        let el = self.wait(css).await;
        self.command(
            reqwest::Method::POST,
            &format!("/element/{}/clear", el.0),
            json!({}),
        )
        .await;
        self.type_into(&el, text).await;
    }

    /// Types `text` into `el` (for a file input: the path of the file to choose).
    pub async fn type_into(&self, el: &Element, text: &str) {
        self.command(
            reqwest::Method::POST,
            &format!("/element/{}/value", el.0),
            json!({"text": text}),
        )
        .await;
    }

    /// Picks the option with `value` in the `<select>` matching `css`.
    pub async fn choose(&self, css: &str, value: &str) {
        self.wait(css).await;
        let done = self
            .script(
                "const s = document.querySelector(arguments[0]); s.value = arguments[1]; \
                 s.dispatchEvent(new Event('change', {bubbles: true})); return s.value;",
                json!([css, value]),
            )
            .await;
        assert_eq!(done, value, "`{css}` has no option {value:?}");
    }

    /// Resizes the window (headless: the viewport) to `width`×`height`.
    pub async fn resize(&self, width: u32, height: u32) {
        self.command(
            reqwest::Method::POST,
            "/window/rect",
            json!({"width": width, "height": height}),
        )
        .await;
    }

    /// Runs a Chrome DevTools Protocol command through chromedriver.
    pub async fn cdp(&self, cmd: &str, params: Value) -> Value {
        self.command(
            reqwest::Method::POST,
            "/goog/cdp/execute",
            json!({"cmd": cmd, "params": params}),
        )
        .await
    }

    /// Makes the page's viewport exactly `width`×`height` CSS pixels (a phone's when `mobile`),
    /// whatever the window around it.
    pub async fn viewport(&self, width: u32, height: u32, mobile: bool) {
        self.cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}),
        )
        .await;
    }

    /// Saves a PNG of the viewport to `path`.
    pub async fn screenshot(&self, path: &Path) {
        let data = self
            .command(reqwest::Method::GET, "/screenshot", Value::Null)
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(data.as_str().unwrap_or_default())
            .expect("a base64 screenshot");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, png).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }

    /// The browser console's messages so far (`None` if this chromedriver does not keep them).
    pub async fn console_log(&self) -> Option<Vec<String>> {
        let entries = self
            .try_command(reqwest::Method::POST, "/se/log", json!({"type": "browser"}))
            .await
            .ok()?;
        Some(
            entries
                .as_array()?
                .iter()
                .map(|e| {
                    format!(
                        "{} {}",
                        e["level"].as_str().unwrap_or_default(),
                        e["message"].as_str().unwrap_or_default()
                    )
                })
                .collect(),
        )
    }

    /// Ends the session (Chromium exits) and chromedriver.
    fn stop(&mut self) {
        if !self.session.is_empty() {
            // Blocking and minimal, so it also runs while a failed test unwinds.
            let request = format!(
                "DELETE /session/{} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\n\
                 Connection: close\r\n\r\n",
                self.session, self.port
            );
            if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
                let _ = stream.write_all(request.as_bytes());
                let _ = stream.read_to_end(&mut Vec::new());
            }
            self.session.clear();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.stop();
    }
}
