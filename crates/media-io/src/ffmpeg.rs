//! Everything that is neither Y4M, PNG nor WAV goes through the `ffmpeg`/`ffprobe` programs as
//! subprocesses: raw RGB24 frames (or f32 samples) over a pipe.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::thread::JoinHandle;

use frame::Frame;

use crate::temp::TempOutput;
use crate::{MediaError, Rational, VideoInfo};

fn spawn(program: &str, cmd: &mut Command, path: &Path) -> Result<Child, MediaError> {
    cmd.spawn().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            MediaError::MissingProgram {
                program: program.into(),
                path: path.into(),
            }
        } else {
            MediaError::io(path, e)
        }
    })
}

/// Runs `ffprobe` on the first stream of `kind` (`v` or `a`) and returns its `key=value` lines.
pub(crate) fn probe(
    path: &Path,
    kind: &str,
    entries: &str,
) -> Result<Vec<(String, String)>, MediaError> {
    let mut cmd = Command::new("ffprobe");
    cmd.args(["-v", "error", "-select_streams"])
        .arg(format!("{kind}:0"))
        .args(["-show_entries"])
        .arg(format!("stream={entries}"))
        .args(["-of", "default=noprint_wrappers=1"])
        .arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = spawn("ffprobe", &mut cmd, path)?
        .wait_with_output()
        .map_err(|e| MediaError::io(path, e))?;
    if !out.status.success() {
        return Err(MediaError::ProgramFailed {
            program: "ffprobe".into(),
            path: path.into(),
            detail: format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect())
}

fn stderr_collector(child: &mut Child) -> Option<JoinHandle<String>> {
    let mut stderr = child.stderr.take()?;
    Some(std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    }))
}

fn finish_child(
    program: &str,
    path: &Path,
    child: &mut Child,
    stderr: Option<JoinHandle<String>>,
) -> Result<(), MediaError> {
    let status = child.wait().map_err(|e| MediaError::io(path, e))?;
    let text = stderr.and_then(|h| h.join().ok()).unwrap_or_default();
    if status.success() {
        return Ok(());
    }
    Err(MediaError::ProgramFailed {
        program: program.into(),
        path: path.into(),
        detail: format!("{status}: {}", text.trim()),
    })
}

/// A running `ffmpeg -i <path> <output args> -`: what it decodes comes out of its stdout.
///
/// Dropped before [`Decoder::finish`], the process is killed and reaped.
#[derive(Debug)]
struct Decoder {
    path: PathBuf,
    child: Child,
    stdout: ChildStdout,
    stderr: Option<JoinHandle<String>>,
    /// [`Decoder::finish`] ran: the output has ended and the process was waited for.
    finished: bool,
}

impl Decoder {
    fn spawn(path: &Path, output: &[&str]) -> Result<Self, MediaError> {
        let mut cmd = Command::new("ffmpeg");
        cmd.args(["-nostdin", "-v", "error", "-i"])
            .arg(path)
            .args(output)
            .arg("-")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = spawn("ffmpeg", &mut cmd, path)?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = stderr_collector(&mut child);
        Ok(Self {
            path: path.into(),
            child,
            stdout,
            stderr,
            finished: false,
        })
    }

    /// Reads what the process wrote so far into `buf`; 0 at its end.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, MediaError> {
        self.stdout
            .read(buf)
            .map_err(|e| MediaError::io(&self.path, e))
    }

    /// Waits for the process and turns a failed exit into an error with its stderr.
    fn finish(&mut self) -> Result<(), MediaError> {
        self.finished = true;
        finish_child("ffmpeg", &self.path, &mut self.child, self.stderr.take())
    }
}

impl Drop for Decoder {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[derive(Debug)]
pub(crate) struct FfmpegReader {
    decoder: Decoder,
    info: VideoInfo,
    index: u64,
}

impl FfmpegReader {
    pub(crate) fn open(path: &Path) -> Result<Self, MediaError> {
        let fields = probe(
            path,
            "v",
            "width,height,r_frame_rate,avg_frame_rate,nb_frames",
        )?;
        let get = |k: &str| {
            fields
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        let parse_rate = |v: Option<&str>| {
            v.and_then(|v| v.split_once('/'))
                .and_then(|(n, d)| Some(Rational::new(n.parse().ok()?, d.parse().ok()?)))
                .filter(|r| r.num > 0 && r.den > 0)
        };
        let (Some(width), Some(height)) = (
            get("width").and_then(|v| v.parse::<u32>().ok()),
            get("height").and_then(|v| v.parse::<u32>().ok()),
        ) else {
            return Err(MediaError::NoFrames { path: path.into() });
        };
        crate::check_frame_size(path, width, height)?;
        let fps = parse_rate(get("avg_frame_rate"))
            .or_else(|| parse_rate(get("r_frame_rate")))
            .unwrap_or(Rational::new(25, 1));
        let frame_count = get("nb_frames").and_then(|v| v.parse::<u64>().ok());
        if frame_count == Some(0) {
            return Err(MediaError::NoFrames { path: path.into() });
        }
        let decoder = Decoder::spawn(
            path,
            &[
                "-map",
                "0:v:0",
                "-f",
                "rawvideo",
                "-pix_fmt",
                "rgb24",
                "-vsync",
                "passthrough",
            ],
        )?;
        Ok(Self {
            decoder,
            info: VideoInfo {
                width,
                height,
                fps,
                frame_count,
            },
            index: 0,
        })
    }

    pub(crate) fn info(&self) -> &VideoInfo {
        &self.info
    }

    pub(crate) fn next_frame(&mut self) -> Result<Option<Frame>, MediaError> {
        if self.decoder.finished {
            return Ok(None);
        }
        let len = self.info.width as usize * self.info.height as usize * 3;
        let mut buf = vec![0u8; len];
        let mut filled = 0;
        while filled < len {
            let n = self.decoder.read(&mut buf[filled..])?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        if filled == len {
            self.index += 1;
            return Ok(Some(
                Frame::new(self.info.width, self.info.height, buf).expect("sized"),
            ));
        }
        self.decoder.finish()?;
        if filled != 0 {
            return Err(MediaError::ProgramFailed {
                program: "ffmpeg".into(),
                path: self.decoder.path.clone(),
                detail: format!("frame {} is truncated", self.index),
            });
        }
        if self.index == 0 {
            return Err(MediaError::NoFrames {
                path: self.decoder.path.clone(),
            });
        }
        Ok(None)
    }
}

#[derive(Debug)]
pub(crate) struct FfmpegWriter {
    child: Child,
    stdin: Option<ChildStdin>,
    stderr: Option<JoinHandle<String>>,
    out: Option<TempOutput>,
    dest: PathBuf,
    finished: bool,
}

impl FfmpegWriter {
    pub(crate) fn create(
        path: &Path,
        info: &VideoInfo,
        audio: Option<&Path>,
    ) -> Result<Self, MediaError> {
        let out = TempOutput::new(path)?;
        let mut cmd = Command::new("ffmpeg");
        cmd.args([
            "-nostdin", "-y", "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s",
        ])
        .arg(format!("{}x{}", info.width, info.height))
        .arg("-r")
        .arg(info.fps.to_string())
        .args(["-i", "-"]);
        if let Some(audio) = audio {
            cmd.arg("-i").arg(audio).args([
                "-map",
                "0:v:0",
                "-map",
                "1:a:0",
                "-c:a",
                "aac",
                "-shortest",
            ]);
        }
        cmd.args([
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-crf",
            "18",
            "-pix_fmt",
            "yuv420p",
            // yuv420p needs even sides.
            "-vf",
            "pad=ceil(iw/2)*2:ceil(ih/2)*2",
        ])
        .arg(out.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        let mut child = spawn("ffmpeg", &mut cmd, path)?;
        let stdin = child.stdin.take();
        let stderr = stderr_collector(&mut child);
        Ok(Self {
            child,
            stdin,
            stderr,
            dest: out.dest().to_path_buf(),
            out: Some(out),
            finished: false,
        })
    }

    fn failure(&mut self) -> MediaError {
        drop(self.stdin.take());
        self.finished = true;
        let dest = self.dest.clone();
        match finish_child("ffmpeg", &dest, &mut self.child, self.stderr.take()) {
            Err(e) => e,
            Ok(()) => MediaError::ProgramFailed {
                program: "ffmpeg".into(),
                path: dest,
                detail: "it stopped reading frames".into(),
            },
        }
    }

    pub(crate) fn write_frame(&mut self, frame: &Frame) -> Result<(), MediaError> {
        let Some(stdin) = self.stdin.as_mut() else {
            return Err(self.failure());
        };
        if stdin.write_all(frame.data()).is_err() {
            return Err(self.failure());
        }
        Ok(())
    }

    pub(crate) fn finish(mut self) -> Result<(), MediaError> {
        drop(self.stdin.take());
        self.finished = true;
        let dest = self.dest.clone();
        finish_child("ffmpeg", &dest, &mut self.child, self.stderr.take())?;
        match self.out.take() {
            Some(out) => out.commit(),
            None => Ok(()),
        }
    }
}

impl Drop for FfmpegWriter {
    fn drop(&mut self) {
        if !self.finished {
            drop(self.stdin.take());
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Audio decoded by `ffmpeg` to interleaved f32 samples over a pipe, read as it comes.
#[derive(Debug)]
pub(crate) struct FfmpegAudio {
    decoder: Decoder,
    pub(crate) channels: u16,
    pub(crate) sample_rate: u32,
    /// Bytes read but not yet returned (a sample split across reads).
    bytes: Vec<u8>,
}

impl FfmpegAudio {
    pub(crate) fn open(path: &Path) -> Result<Self, MediaError> {
        let fields = probe(path, "a", "sample_rate,channels")?;
        let get = |k: &str| {
            fields
                .iter()
                .find(|(key, _)| key == k)
                .and_then(|(_, v)| v.parse::<u32>().ok())
        };
        let (Some(rate), Some(channels)) = (get("sample_rate"), get("channels")) else {
            return Err(MediaError::NoSamples { path: path.into() });
        };
        let channels = u16::try_from(channels)
            .ok()
            .filter(|&c| c > 0)
            .ok_or_else(|| MediaError::NoSamples { path: path.into() })?;
        let decoder = Decoder::spawn(
            path,
            &["-map", "0:a:0", "-f", "f32le", "-acodec", "pcm_f32le"],
        )?;
        Ok(Self {
            decoder,
            channels,
            sample_rate: rate,
            bytes: Vec::new(),
        })
    }

    /// Fills `buf` with up to `buf.len()` samples (whole frames); 0 at the end, after which the
    /// process's exit status has been checked.
    pub(crate) fn read(&mut self, buf: &mut [f32]) -> Result<usize, MediaError> {
        let frame = 4 * usize::from(self.channels);
        let want = buf.len() / usize::from(self.channels) * frame;
        while !self.decoder.finished && self.bytes.len() < want {
            let start = self.bytes.len();
            self.bytes.resize(want, 0);
            let n = self.decoder.read(&mut self.bytes[start..])?;
            self.bytes.truncate(start + n);
            if n == 0 {
                self.decoder.finish()?;
            }
        }
        let whole = self.bytes.len().min(want) / frame * frame;
        for (dst, b) in buf.iter_mut().zip(self.bytes[..whole].chunks_exact(4)) {
            *dst = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }
        self.bytes.drain(..whole);
        Ok(whole / 4)
    }
}
