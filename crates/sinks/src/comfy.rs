//! ComfyUI adapter: progress as ComfyUI websocket messages, ComfyUI's interrupt as cancellation.
//!
//! Pure formatting plus a hook: [`ComfySink`] turns events into [`ComfyMessage`]s and hands them
//! to a closure, which sends them however the host does (in a custom node, typically to
//! `PromptServer.instance.send_sync` / the websocket through a Python binding).
//!
//! - **Progress**: `{"type":"progress","data":{"value":V,"max":M,"prompt_id":P,"node":N}}` for
//!   one bar per node, chosen by [`ComfyBar`]: the whole run (default, `value` = the run's
//!   weighted fraction × `max`, rounded down, so it only reads `max` when everything is done) or
//!   one phase (its own `pos`/`total`). Throttled as ComfyUI throttles: an update goes out when
//!   at least 0.1 s (event time) passed since the last one *and* the value moved by at least 0.5%
//!   of `max`; the first update, the final one (`value == max`) and the one before a preview
//!   go out at once; an unchanged value never repeats.
//! - **Previews**: binary frames, 4-byte big-endian event type 1 (`PREVIEW_IMAGE`), 4-byte BE
//!   image format 2 (PNG), the PNG bytes. RGB8 previews are PNG-encoded first. With
//!   [`ComfyConfig::preview_metadata`], type 4 (`PREVIEW_IMAGE_WITH_METADATA`): BE type, BE
//!   length of the JSON, the JSON (`image_type`, `node_id`, `display_node_id`, `prompt_id`,
//!   `frame`), the PNG bytes. JPEG (format 1) is never produced.
//! - **Interrupt**: [`ComfySink::with_interrupt`] polls ComfyUI's interrupt flag on every event
//!   (as each ComfyUI progress update is a cancellation point) and answers
//!   [`Control::Cancel`], which sets the run's cancel token.
//! - **After a cancel**: once, at the first phase that finishes cancelled (or a run that ends
//!   cancelled): `{"type":"execution_interrupted","data":{"prompt_id","node_id","node_type","executed":[]}}`.

use progress_core::{Control, Event, ImageFormat, Outcome, PhaseId, PreviewImage, ProgressSink};
use serde::Serialize;

use crate::text::TARGET;

/// One message for ComfyUI's websocket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComfyMessage {
    /// A JSON text frame.
    Text(String),
    /// A binary frame (a preview image).
    Binary(Vec<u8>),
}

/// Which progress the node's bar shows.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ComfyBar {
    /// The whole run's weighted fraction, scaled to `0..=max`.
    Run {
        /// The bar's `max`.
        max: u64,
    },
    /// One phase's `pos`/`total`, by id (see `Phase::id`). Phases without a total send nothing.
    Phase(PhaseId),
    /// The first phase started with this name.
    PhaseNamed(String),
}

/// Who the messages are about.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ComfyConfig {
    /// The prompt (queue item) being executed.
    pub prompt_id: String,
    /// The node running the work.
    pub node_id: String,
    /// The node's class, for `execution_interrupted`.
    pub node_type: String,
    /// What the node's bar shows; default `ComfyBar::Run { max: 100 }`.
    pub bar: ComfyBar,
    /// Send previews as type 4 (`PREVIEW_IMAGE_WITH_METADATA`) instead of type 1; default off.
    pub preview_metadata: bool,
}

impl ComfyConfig {
    /// A configuration for one node of one prompt, with the defaults above.
    pub fn new(
        prompt_id: impl Into<String>,
        node_id: impl Into<String>,
        node_type: impl Into<String>,
    ) -> Self {
        Self {
            prompt_id: prompt_id.into(),
            node_id: node_id.into(),
            node_type: node_type.into(),
            bar: ComfyBar::Run { max: 100 },
            preview_metadata: false,
        }
    }
}

/// ComfyUI's binary event type for a preview image.
const PREVIEW_IMAGE: u32 = 1;
/// ComfyUI's binary event type for a preview image with a JSON header.
const PREVIEW_IMAGE_WITH_METADATA: u32 = 4;
/// ComfyUI's image format code for PNG.
const FORMAT_PNG: u32 = 2;
/// Minimum seconds between two throttled progress updates.
const MIN_INTERVAL: f64 = 0.1;
/// Minimum change, as a fraction of `max`, for a throttled progress update.
const MIN_CHANGE: f64 = 0.005;

type InterruptFlag = Box<dyn Fn() -> bool + Send>;

/// The ComfyUI adapter sink; see the [module docs](self).
pub struct ComfySink<H> {
    config: ComfyConfig,
    hook: H,
    interrupt: Option<InterruptFlag>,
    /// The phase the bar follows, once known.
    target: Option<PhaseId>,
    /// The latest `(value, max)` of the bar, sent or not.
    current: Option<(u64, u64)>,
    /// The last `(t, value, max)` sent.
    sent: Option<(f64, u64, u64)>,
    interrupted_sent: bool,
}

impl<H> std::fmt::Debug for ComfySink<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComfySink")
            .field("config", &self.config)
            .field("target", &self.target)
            .field("sent", &self.sent)
            .finish_non_exhaustive()
    }
}

impl<H: FnMut(ComfyMessage) + Send + 'static> ComfySink<H> {
    /// A sink that hands ComfyUI messages for `config`'s node to `hook`.
    pub fn new(config: ComfyConfig, hook: H) -> Self {
        let target = match config.bar {
            ComfyBar::Phase(id) => Some(id),
            _ => None,
        };
        Self {
            config,
            hook,
            interrupt: None,
            target,
            current: None,
            sent: None,
            interrupted_sent: false,
        }
    }

    /// Polls `interrupted` (e.g. ComfyUI's `processing_interrupted()`) on every event and
    /// cancels the run once it returns `true`.
    pub fn with_interrupt(mut self, interrupted: impl Fn() -> bool + Send + 'static) -> Self {
        self.interrupt = Some(Box::new(interrupted));
        self
    }

    fn text<D: Serialize>(&mut self, kind: &'static str, data: D) {
        let json =
            serde_json::to_string(&Envelope { kind, data }).expect("comfy messages serialise");
        (self.hook)(ComfyMessage::Text(json));
    }

    /// Records the bar's new state and sends it if due (or `force`d, or first, or final).
    fn update(&mut self, t: f64, value: u64, max: u64, force: bool) {
        self.current = Some((value, max));
        let due = match self.sent {
            None => true,
            Some((_, v, m)) if v == value && m == max => false,
            Some(_) if force || value >= max => true,
            Some((last_t, v, _)) => {
                t - last_t >= MIN_INTERVAL && value.abs_diff(v) as f64 >= MIN_CHANGE * max as f64
            }
        };
        if !due {
            return;
        }
        self.sent = Some((t, value, max));
        let data = ProgressData {
            value,
            max,
            prompt_id: &self.config.prompt_id,
            node: &self.config.node_id,
        };
        let json = serde_json::to_string(&Envelope {
            kind: "progress",
            data,
        })
        .expect("comfy messages serialise");
        (self.hook)(ComfyMessage::Text(json));
    }

    fn preview(&mut self, t: f64, frame: u64, image: &PreviewImage) {
        if let Some((value, max)) = self.current {
            self.update(t, value, max, true);
        }
        let png = match image.format {
            ImageFormat::Png => image.data.clone(),
            ImageFormat::Rgb8 => match encode_png(image) {
                Ok(png) => png,
                Err(error) => {
                    tracing::warn!(target: TARGET, frame, error = %error, "comfy sink: preview not sent");
                    return;
                }
            },
        };
        let frame_bytes = if self.config.preview_metadata {
            let metadata = PreviewMetadata {
                image_type: "image/png",
                node_id: &self.config.node_id,
                display_node_id: &self.config.node_id,
                prompt_id: &self.config.prompt_id,
                frame,
            };
            let json = serde_json::to_vec(&metadata).expect("comfy metadata serialises");
            preview_with_metadata(&json, &png)
        } else {
            preview_frame(FORMAT_PNG, &png)
        };
        (self.hook)(ComfyMessage::Binary(frame_bytes));
    }

    fn interrupted(&mut self) {
        if self.interrupted_sent {
            return;
        }
        self.interrupted_sent = true;
        let data = Interrupted {
            prompt_id: self.config.prompt_id.clone(),
            node_id: self.config.node_id.clone(),
            node_type: self.config.node_type.clone(),
            executed: Vec::new(),
        };
        self.text("execution_interrupted", data);
    }
}

impl<H: FnMut(ComfyMessage) + Send + 'static> ProgressSink for ComfySink<H> {
    fn handle(&mut self, event: &Event) -> Control {
        let control = match &self.interrupt {
            Some(interrupted) if interrupted() => Control::Cancel,
            _ => Control::Continue,
        };
        let run_max = match self.config.bar {
            ComfyBar::Run { max } => Some(max),
            _ => None,
        };
        match event {
            Event::RunStarted { t, .. } => {
                if let Some(max) = run_max {
                    self.update(*t, 0, max, true);
                }
            }
            Event::RunProgress { t, fraction, .. } => {
                if let Some(max) = run_max {
                    let value = ((fraction.clamp(0.0, 1.0) * max as f64).floor() as u64).min(max);
                    self.update(*t, value, max, false);
                }
            }
            Event::PhaseStarted {
                t, id, name, total, ..
            } => {
                if let ComfyBar::PhaseNamed(wanted) = &self.config.bar
                    && self.target.is_none()
                    && wanted == name
                {
                    self.target = Some(*id);
                }
                if self.target == Some(*id)
                    && let Some(total) = total
                {
                    self.update(*t, 0, *total, true);
                }
            }
            Event::Progress {
                t,
                id,
                pos,
                total: Some(total),
                ..
            } if self.target == Some(*id) => {
                self.update(*t, *pos, *total, false);
            }
            Event::Preview {
                t, frame, image, ..
            } => self.preview(*t, *frame, image),
            Event::PhaseFinished {
                t,
                id,
                outcome,
                pos,
                total,
                ..
            } => {
                if self.target == Some(*id)
                    && let Some(total) = total
                {
                    self.update(*t, *pos, *total, true);
                }
                if *outcome == Outcome::Cancelled {
                    self.interrupted();
                }
            }
            Event::RunFinished { summary, .. } if summary.cancelled => self.interrupted(),
            _ => {}
        }
        control
    }

    fn name(&self) -> String {
        "comfy".into()
    }
}

#[derive(Serialize)]
struct Envelope<'a, D> {
    #[serde(rename = "type")]
    kind: &'a str,
    data: D,
}

#[derive(Serialize)]
struct ProgressData<'a> {
    value: u64,
    max: u64,
    prompt_id: &'a str,
    node: &'a str,
}

#[derive(Serialize)]
struct Interrupted {
    prompt_id: String,
    node_id: String,
    node_type: String,
    executed: Vec<String>,
}

#[derive(Serialize)]
struct PreviewMetadata<'a> {
    image_type: &'a str,
    node_id: &'a str,
    display_node_id: &'a str,
    prompt_id: &'a str,
    frame: u64,
}

/// Type 1: BE event type, BE image format, image bytes.
fn preview_frame(format: u32, image: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + image.len());
    out.extend_from_slice(&PREVIEW_IMAGE.to_be_bytes());
    out.extend_from_slice(&format.to_be_bytes());
    out.extend_from_slice(image);
    out
}

/// Type 4: BE event type, BE JSON length, JSON, image bytes.
fn preview_with_metadata(json: &[u8], image: &[u8]) -> Vec<u8> {
    let len = u32::try_from(json.len()).expect("preview metadata is far below 4 GiB");
    let mut out = Vec::with_capacity(8 + json.len() + image.len());
    out.extend_from_slice(&PREVIEW_IMAGE_WITH_METADATA.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(json);
    out.extend_from_slice(image);
    out
}

/// Why an RGB8 preview could not be PNG-encoded.
#[derive(Debug)]
enum EncodeError {
    Size {
        width: u32,
        height: u32,
        bytes: usize,
    },
    Png(png::EncodingError),
}

impl std::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EncodeError::Size {
                width,
                height,
                bytes,
            } => write!(
                f,
                "rgb8 preview of {width}x{height} needs {} bytes, has {bytes}",
                u64::from(*width) * u64::from(*height) * 3
            ),
            EncodeError::Png(e) => write!(f, "png encoding failed: {e}"),
        }
    }
}

fn encode_png(image: &PreviewImage) -> Result<Vec<u8>, EncodeError> {
    let expected = u64::from(image.width) * u64::from(image.height) * 3;
    if image.width == 0 || image.height == 0 || image.data.len() as u64 != expected {
        return Err(EncodeError::Size {
            width: image.width,
            height: image.height,
            bytes: image.data.len(),
        });
    }
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, image.width, image.height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(EncodeError::Png)?;
    writer
        .write_image_data(&image.data)
        .map_err(EncodeError::Png)?;
    writer.finish().map_err(EncodeError::Png)?;
    Ok(out)
}
