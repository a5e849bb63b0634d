//! The local admin channel: `tally` commands run by the `tally serve` that owns the data
//! directory.
//!
//! Only one process may open a data directory (the engine's `LOCK`). While `tally serve` runs,
//! the other commands (`website`, `token`, `import`, `query`) connect to the Unix socket
//! [`SOCKET`] in the data directory, send their arguments, and print what the server's run of
//! the same command writes, so a website or key created from the shell is live at once and
//! nothing is written by two processes. The socket is owner-only (0600): whoever can use it can
//! read the data directory anyway.
//!
//! The protocol is JSON lines: the client sends one [`Request`], the server answers with
//! [`Reply`] lines, the last of them `done` or `failed`.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Semaphore, mpsc};

/// Name of the socket inside the data directory.
pub const SOCKET: &str = "admin.sock";
/// Longest request line accepted.
const MAX_REQUEST_BYTES: u64 = 64 * 1024;
/// Commands run at once over the channel.
const MAX_CONCURRENT: usize = 4;

/// A command to run: the arguments after `tally`, and the directory they are relative to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    /// Arguments, as typed (`["website", "create", "--domain", "example.com"]`).
    pub args: Vec<String>,
    /// The client's working directory (for relative file names).
    pub cwd: PathBuf,
}

/// One line of a command's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    /// A line for standard output.
    Stdout(String),
    /// A line for standard error.
    Stderr(String),
    /// The command succeeded.
    Done,
    /// The command failed, with why.
    Failed(String),
}

/// Where a command writes: this process's terminal, or a client of the channel.
#[derive(Debug, Clone)]
pub enum Output {
    /// Standard output and standard error.
    Terminal,
    /// Lines sent back to the client (bounded: a slow client slows the command).
    Remote(mpsc::Sender<Reply>),
}

impl Output {
    /// Whether a person may be watching (progress bars make sense).
    pub fn is_terminal(&self) -> bool {
        matches!(self, Output::Terminal)
    }

    /// Writes a line of the command's result.
    pub async fn stdout(&self, line: impl Into<String>) {
        match self {
            Output::Terminal => println!("{}", line.into()),
            Output::Remote(tx) => {
                let _ = tx.send(Reply::Stdout(line.into())).await;
            }
        }
    }

    /// Writes a message for the person (a rejected line, a warning), around `bar` if shown.
    pub async fn stderr(&self, bar: &indicatif::ProgressBar, line: impl Into<String>) {
        match self {
            Output::Terminal => {
                let line = line.into();
                bar.suspend(|| eprintln!("{line}"));
            }
            Output::Remote(tx) => {
                let _ = tx.send(Reply::Stderr(line.into())).await;
            }
        }
    }
}

/// Creates the socket at `path`, owner-only, ready for [`serve`].
pub fn bind(path: &Path) -> anyhow::Result<UnixListener> {
    // A socket file left by a killed server: this process holds the directory's lock, so no
    // one else can be listening on it.
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing {}", path.display())),
    }
    let listener =
        UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("restricting {}", path.display()))?;
    Ok(listener)
}

/// Runs each request that comes to `listener` with `run`, until the process ends.
pub async fn serve<F, Fut>(listener: UnixListener, run: F) -> anyhow::Result<()>
where
    F: Fn(Request, Output) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let run = Arc::new(run);
    let slots = Arc::new(Semaphore::new(MAX_CONCURRENT));
    loop {
        let (stream, _) = listener.accept().await?;
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return Ok(());
        };
        let run = Arc::clone(&run);
        tokio::spawn(async move {
            let _slot = slot;
            if let Err(e) = answer(stream, run.as_ref()).await {
                tracing::warn!(error = %e, "admin channel request failed");
            }
        });
    }
}

async fn answer<F, Fut>(stream: UnixStream, run: &F) -> anyhow::Result<()>
where
    F: Fn(Request, Output) -> Fut,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    BufReader::new(read)
        .take(MAX_REQUEST_BYTES)
        .read_line(&mut line)
        .await?;
    let request: Request = serde_json::from_str(&line).context("reading the request")?;
    let (tx, mut rx) = mpsc::channel(256);
    let command = tokio::spawn(run(request, Output::Remote(tx.clone())));
    drop(tx);
    let outcome = async {
        match command.await {
            Ok(Ok(())) => Reply::Done,
            Ok(Err(e)) => Reply::Failed(format!("{e:#}")),
            Err(e) => Reply::Failed(format!("the command stopped: {e}")),
        }
    };
    // Forward lines while the command runs, then its outcome.
    let forward = async {
        while let Some(reply) = rx.recv().await {
            send(&mut write, &reply).await?;
        }
        anyhow::Ok(())
    };
    let (outcome, forwarded) = tokio::join!(outcome, forward);
    forwarded?;
    send(&mut write, &outcome).await?;
    write.shutdown().await?;
    Ok(())
}

async fn send(write: &mut tokio::net::unix::OwnedWriteHalf, reply: &Reply) -> anyhow::Result<()> {
    let mut line = serde_json::to_vec(reply)?;
    line.push(b'\n');
    write.write_all(&line).await?;
    Ok(())
}

/// Runs `request` on the server listening at `path`, printing its output here. `Ok(None)` when
/// no server listens there.
pub async fn forward(path: &Path, request: &Request) -> anyhow::Result<Option<()>> {
    let stream = match UnixStream::connect(path).await {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(e).with_context(|| format!("connecting to {}", path.display())),
    };
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_vec(request)?;
    line.push(b'\n');
    write.write_all(&line).await?;
    let mut lines = BufReader::new(read).lines();
    while let Some(line) = lines.next_line().await? {
        match serde_json::from_str::<Reply>(&line).context("reading the server's reply")? {
            Reply::Stdout(s) => println!("{s}"),
            Reply::Stderr(s) => eprintln!("{s}"),
            Reply::Done => return Ok(Some(())),
            Reply::Failed(why) => anyhow::bail!("{why}"),
        }
    }
    anyhow::bail!("the server closed the admin channel before the command finished")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_runs_on_the_server_and_its_lines_come_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SOCKET);
        let listener = bind(&path).unwrap();
        let server = tokio::spawn(serve(listener, |req: Request, out: Output| async move {
            if req.args.first().map(String::as_str) == Some("fail") {
                anyhow::bail!("asked to fail");
            }
            for a in &req.args {
                out.stdout(a.clone()).await;
            }
            Ok(())
        }));
        let mode = {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777
        };
        assert_eq!(mode, 0o600);
        let ok = Request {
            args: vec!["a".into(), "b".into()],
            cwd: dir.path().to_owned(),
        };
        assert_eq!(forward(&path, &ok).await.unwrap(), Some(()));
        let fail = Request {
            args: vec!["fail".into()],
            cwd: dir.path().to_owned(),
        };
        let err = forward(&path, &fail).await.unwrap_err().to_string();
        assert!(err.contains("asked to fail"), "{err}");
        server.abort();
        let gone = dir.path().join("none.sock");
        assert_eq!(forward(&gone, &ok).await.unwrap(), None);
    }
}
