//! The face status: what the stage reports about each frame, as a progress record.

use progress_core::{Fields, RecordType};

/// Whether a face was found in a frame and what the stage did about it: one progress record
/// (kind `face_status`) per frame, sent by [`FaceProcessor::process_batch`].
///
/// Its JSON form (progress-core's schema v1, with `t` and `phase`): `frame`, `faces`, `action`
/// (`aligned`/`passed_through`/`interpolated`/`failed`), `mouth_open` (inner-lip gap / mouth
/// width, from the face mesh), `presence` (the mesh's face-presence score, 0..1), `reason` (why
/// there is no face: `not_detected`/`low_presence`), absent values `null`:
///
/// ```
/// use face_proc::{FaceAction, FaceStatus};
/// use progress_core::{Event, Record, RecordType};
///
/// let status = FaceStatus { frame: 7, faces: 1, action: FaceAction::Aligned, mouth_open: Some(0.25),
///                           presence: Some(0.5), reason: None };
/// let event = Event::Record(Record::new(1.5, 2, &status));
/// assert_eq!(
///     serde_json::to_string(&event).unwrap(),
///     r#"{"type":"face_status","t":1.5,"phase":2,"frame":7,"faces":1,"action":"aligned","mouth_open":0.25,"presence":0.5,"reason":null}"#
/// );
/// assert_eq!(FaceStatus::from_event(&event), Some(status));
/// ```
///
/// [`FaceProcessor::process_batch`]: crate::FaceProcessor::process_batch
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaceStatus {
    /// Frame index in the video.
    pub frame: u64,
    /// Number of faces found.
    pub faces: u32,
    /// What the stage did with the frame.
    pub action: FaceAction,
    /// How open the mouth is (the gap between the inner lips over the mouth's width, from
    /// the face mesh; about 0 closed, 0.3–0.6 wide open); `None` without a mesh.
    pub mouth_open: Option<f32>,
    /// The face mesh's face-presence score (0..1); `None` without a mesh.
    pub presence: Option<f32>,
    /// Why the frame has no usable face; `None` when it has one.
    pub reason: Option<NoFaceReason>,
}

impl RecordType for FaceStatus {
    const KIND: &'static str = "face_status";

    fn to_fields(&self) -> Fields {
        Fields::new()
            .with("frame", self.frame)
            .with("faces", self.faces)
            .with("action", self.action.name())
            .with("mouth_open", self.mouth_open)
            .with("presence", self.presence)
            .with("reason", self.reason.map(NoFaceReason::name))
    }

    fn from_fields(fields: &Fields) -> Option<Self> {
        // Absent and `null` are `None`; anything else must have the field's type.
        let optional = |name: &str| fields.get(name).filter(|v| !v.is_null());
        let number = |name: &str| optional(name).map_or(Some(None), |v| v.as_f32().map(Some));
        let reason = match optional("reason") {
            Some(v) => Some(NoFaceReason::from_name(v.as_str()?)?),
            None => None,
        };
        Some(Self {
            frame: fields.get("frame")?.as_u64()?,
            faces: u32::try_from(fields.get("faces")?.as_u64()?).ok()?,
            action: FaceAction::from_name(fields.get("action")?.as_str()?)?,
            mouth_open: number("mouth_open")?,
            presence: number("presence")?,
            reason,
        })
    }
}

/// What the stage did with a frame, in a [`FaceStatus`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FaceAction {
    /// A face was found and aligned.
    Aligned,
    /// No usable face: the frame goes through untouched.
    PassedThrough,
    /// No usable face: the transform comes from the neighbouring frames with a face (blended
    /// between them, or the last one held).
    Interpolated,
    /// No usable face and the policy is to fail.
    Failed,
}

/// Why a frame has no usable face, in a [`FaceStatus`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NoFaceReason {
    /// The detector found no face.
    NotDetected,
    /// A face was detected but the face mesh's presence score is below the threshold (a
    /// false detection, or a face turned away or covered).
    LowPresence,
}

/// An enumeration's snake-case names in the JSON form, both ways.
macro_rules! names {
    ($ty:ident { $($variant:ident = $name:literal),* $(,)? }) => {
        impl $ty {
            /// The name in the JSON form (snake case).
            pub fn name(self) -> &'static str {
                match self {
                    $($ty::$variant => $name,)*
                }
            }

            /// The value named `name` in the JSON form.
            pub fn from_name(name: &str) -> Option<Self> {
                match name {
                    $($name => Some($ty::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

names!(FaceAction {
    Aligned = "aligned",
    PassedThrough = "passed_through",
    Interpolated = "interpolated",
    Failed = "failed",
});

names!(NoFaceReason {
    NotDetected = "not_detected",
    LowPresence = "low_presence",
});

#[cfg(test)]
mod tests {
    use super::*;
    use progress_core::{Event, Record};

    /// `status`'s JSON line (progress-core's schema v1) is `json`, which reads back as `status`.
    fn check(status: FaceStatus, json: &str) {
        let event = Event::Record(Record::new(4.5, 2, &status));
        assert_eq!(serde_json::to_string(&event).unwrap(), json);
        let back: Event = serde_json::from_str(json).unwrap();
        assert_eq!(back, event);
        assert_eq!(FaceStatus::from_event(&back), Some(status));
    }

    #[test]
    fn face_status_lines_of_schema_1() {
        let status = |action, reason| FaceStatus {
            frame: 8,
            faces: 1,
            action,
            mouth_open: None,
            presence: None,
            reason,
        };
        check(
            status(FaceAction::Aligned, None),
            r#"{"type":"face_status","t":4.5,"phase":2,"frame":8,"faces":1,"action":"aligned","mouth_open":null,"presence":null,"reason":null}"#,
        );
        check(
            FaceStatus {
                mouth_open: Some(0.112_737_074),
                presence: Some(0.125),
                ..status(FaceAction::PassedThrough, Some(NoFaceReason::LowPresence))
            },
            r#"{"type":"face_status","t":4.5,"phase":2,"frame":8,"faces":1,"action":"passed_through","mouth_open":0.112737074,"presence":0.125,"reason":"low_presence"}"#,
        );
        check(
            status(FaceAction::Interpolated, Some(NoFaceReason::NotDetected)),
            r#"{"type":"face_status","t":4.5,"phase":2,"frame":8,"faces":1,"action":"interpolated","mouth_open":null,"presence":null,"reason":"not_detected"}"#,
        );
        check(
            status(FaceAction::Failed, Some(NoFaceReason::NotDetected)),
            r#"{"type":"face_status","t":4.5,"phase":2,"frame":8,"faces":1,"action":"failed","mouth_open":null,"presence":null,"reason":"not_detected"}"#,
        );
    }

    #[test]
    fn a_record_of_another_kind_or_with_a_wrong_value_is_not_a_face_status() {
        for json in [
            r#"{"type":"mouth","t":0.0,"phase":2,"frame":8,"faces":1,"action":"aligned"}"#,
            r#"{"type":"face_status","t":0.0,"phase":2,"frame":8,"faces":1,"action":"waved"}"#,
            r#"{"type":"face_status","t":0.0,"phase":2,"frame":8,"faces":1,"action":"aligned","presence":"high"}"#,
        ] {
            let event: Event = serde_json::from_str(json).unwrap();
            assert_eq!(FaceStatus::from_event(&event), None, "{json}");
        }
    }
}
