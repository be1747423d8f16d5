//! Records: events that the work defines itself, with named, typed values.
//!
//! # Why records
//! progress-core carries what every long job has (phases, counters, cancellation, messages,
//! previews) and nothing about any one job. What is specific to a job (the face stage's
//! per-frame face status, say) is a *record*: a kind (its JSON `type`) and named scalar values
//! in a fixed order. The crate that knows the job defines a Rust type for it and implements
//! [`RecordType`]; producers send it with [`Phase::record`](crate::Phase::record); sinks render
//! any record without knowing its type (the JSON lines sink writes it as one more event type, a
//! log sink logs its fields), and a consumer that knows the type reads it back with
//! [`RecordType::from_event`].
//!
//! Why named scalars rather than a generic payload (`T: Serialize`, or a boxed `Any`): an event
//! must stay `Clone`, comparable and readable back from JSON by a consumer that has never heard
//! of the type (`facesync watch` replays a job's events from the bus), and the JSON form must
//! not depend on which crate sent it. A list of `(name, Value)` pairs gives all of that, keeps
//! the field order of the wire format, and keeps the `f32`-or-`f64` distinction that decides
//! how a number is printed.
//!
//! # Wire format
//! A record is one JSON object: `"type"` (the kind), `"t"`, `"phase"`, then its fields in
//! order, e.g. `{"type":"face_status","t":1.5,"phase":2,"frame":7,"faces":1,...}`. A kind must
//! be snake case and must not be one of the built-in event types (`progress`, `message`…):
//! reading an event back, a built-in type always wins.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

use crate::event::{Event, PhaseId};

/// The built-in event types, which no record kind may take.
const BUILT_IN: [&str; 8] = [
    "run_started",
    "phase_started",
    "progress",
    "run_progress",
    "message",
    "preview",
    "phase_finished",
    "run_finished",
];

/// A Rust type that is one kind of record, e.g. the face stage's face status.
///
/// ```
/// use progress_core::{Event, Fields, Phase, RecordType};
///
/// #[derive(Debug, PartialEq)]
/// struct Dropped {
///     frame: u64,
///     why: &'static str,
/// }
///
/// impl RecordType for Dropped {
///     const KIND: &'static str = "frame_dropped";
///
///     fn to_fields(&self) -> Fields {
///         Fields::new().with("frame", self.frame).with("why", self.why)
///     }
///
///     fn from_fields(fields: &Fields) -> Option<Self> {
///         let why = match fields.get("why")?.as_str()? {
///             "late" => "late",
///             _ => "other",
///         };
///         Some(Dropped { frame: fields.get("frame")?.as_u64()?, why })
///     }
/// }
///
/// let json = r#"{"type":"frame_dropped","t":0.5,"phase":1,"frame":3,"why":"late"}"#;
/// let event: Event = serde_json::from_str(json).unwrap();
/// assert_eq!(Dropped::from_event(&event), Some(Dropped { frame: 3, why: "late" }));
/// assert_eq!(serde_json::to_string(&event).unwrap(), json);
/// # let _ = Phase::detached("p", None, "frames").record(&Dropped { frame: 3, why: "late" });
/// ```
pub trait RecordType: Sized {
    /// The record's JSON `type`, snake case, not one of the built-in event types.
    const KIND: &'static str;

    /// The record's fields, in their JSON order.
    fn to_fields(&self) -> Fields;

    /// The record from its fields (`None` when one is missing or has the wrong type). Numbers
    /// read back from JSON are `U64`/`I64` for integers and `F64` for the rest: accept those
    /// with [`Value::as_u64`], [`Value::as_f64`]…
    fn from_fields(fields: &Fields) -> Option<Self>;

    /// The record in `event`, if it is one of this kind (its time and phase are the event's:
    /// match [`Event::Record`] for them).
    fn from_event(event: &Event) -> Option<Self> {
        match event {
            Event::Record(r) if r.kind == Self::KIND => Self::from_fields(&r.fields),
            _ => None,
        }
    }
}

/// A record as sinks receive it: see the [module docs](self).
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Seconds since the run started.
    pub t: f64,
    /// The phase it comes from.
    pub phase: PhaseId,
    /// Its JSON `type` ([`RecordType::KIND`]).
    pub kind: Cow<'static, str>,
    /// Its values, in order.
    pub fields: Fields,
}

impl Record {
    /// A record of `value`'s type.
    pub fn new<R: RecordType>(t: f64, phase: PhaseId, value: &R) -> Self {
        Self {
            t,
            phase,
            kind: Cow::Borrowed(R::KIND),
            fields: value.to_fields(),
        }
    }
}

/// A record's named values, in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fields(Vec<(Cow<'static, str>, Value)>);

impl Fields {
    /// No fields.
    pub fn new() -> Self {
        Self(Vec::new())
    }

    /// Appends a field.
    pub fn with(mut self, name: &'static str, value: impl Into<Value>) -> Self {
        self.push(name, value);
        self
    }

    /// Appends a field.
    pub fn push(&mut self, name: impl Into<Cow<'static, str>>, value: impl Into<Value>) {
        self.0.push((name.into(), value.into()));
    }

    /// The value of the first field called `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// The fields in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(n, v)| (n.as_ref(), v))
    }

    /// The number of fields.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// `name=value` pairs separated by spaces, strings unquoted (for log lines).
impl fmt::Display for Fields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (name, value)) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{name}={value}")?;
        }
        Ok(())
    }
}

/// One value of a record: a JSON scalar.
///
/// `F32` and `F64` are kept apart because they print differently (an `f32` with the fewest
/// digits that give it back as an `f32`). Numbers compare by value: an integer of either kind
/// equals the same integer of the other, and an `F32` equals an `F64` that rounds to it (what a
/// JSON round trip of an `f32` gives back).
#[derive(Debug, Clone, Deserialize)]
#[serde(from = "Scalar")]
#[non_exhaustive]
pub enum Value {
    /// JSON `null` (also what `None` becomes).
    Null,
    /// A boolean.
    Bool(bool),
    /// A non-negative integer.
    U64(u64),
    /// A signed integer.
    I64(i64),
    /// A single-precision number.
    F32(f32),
    /// A double-precision number.
    F64(f64),
    /// A string, e.g. an enumeration's snake-case name.
    Str(Cow<'static, str>),
}

impl Value {
    /// Whether it is `Null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The boolean, if it is one.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// The integer, if it is a non-negative one.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U64(u) => Some(u),
            Value::I64(i) => u64::try_from(i).ok(),
            _ => None,
        }
    }

    /// The integer, if it is one that fits.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::U64(u) => i64::try_from(u).ok(),
            Value::I64(i) => Some(i),
            _ => None,
        }
    }

    /// The number, if it is one (integers too).
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::U64(u) => Some(u as f64),
            Value::I64(i) => Some(i as f64),
            Value::F32(x) => Some(f64::from(x)),
            Value::F64(x) => Some(x),
            _ => None,
        }
    }

    /// The number as an `f32`, if it is one.
    pub fn as_f32(&self) -> Option<f32> {
        match *self {
            Value::F32(x) => Some(x),
            _ => self.as_f64().map(|x| x as f32),
        }
    }

    fn as_i128(&self) -> Option<i128> {
        match *self {
            Value::U64(u) => Some(i128::from(u)),
            Value::I64(i) => Some(i128::from(i)),
            _ => None,
        }
    }

    /// The string, if it is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        use Value::*;
        match (self, other) {
            (Null, Null) => true,
            (Bool(a), Bool(b)) => a == b,
            (Str(a), Str(b)) => a == b,
            (U64(_) | I64(_), U64(_) | I64(_)) => self.as_i128() == other.as_i128(),
            (F32(a), F32(b)) => a == b,
            (F64(a), F64(b)) => a == b,
            (F32(a), F64(b)) | (F64(b), F32(a)) => *b as f32 == *a,
            _ => false,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::U64(u) => write!(f, "{u}"),
            Value::I64(i) => write!(f, "{i}"),
            Value::F32(x) => write!(f, "{x}"),
            Value::F64(x) => write!(f, "{x}"),
            Value::Str(s) => f.write_str(s),
        }
    }
}

macro_rules! value_from {
    ($($t:ty => $variant:ident as $as:ty),* $(,)?) => {
        $(impl From<$t> for Value {
            fn from(v: $t) -> Self {
                Value::$variant(<$as>::from(v))
            }
        })*
    };
}

value_from! {
    bool => Bool as bool,
    u8 => U64 as u64,
    u16 => U64 as u64,
    u32 => U64 as u64,
    u64 => U64 as u64,
    i8 => I64 as i64,
    i16 => I64 as i64,
    i32 => I64 as i64,
    i64 => I64 as i64,
    f32 => F32 as f32,
    f64 => F64 as f64,
    &'static str => Str as Cow<'static, str>,
    String => Str as Cow<'static, str>,
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => s.serialize_none(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::U64(u) => s.serialize_u64(*u),
            Value::I64(i) => s.serialize_i64(*i),
            Value::F32(x) => s.serialize_f32(*x),
            Value::F64(x) => s.serialize_f64(*x),
            Value::Str(text) => s.serialize_str(text),
        }
    }
}

/// A JSON scalar as it reads back: integers as `U64` (or `I64` when negative), other numbers
/// as `F64`.
#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    Null,
    Bool(bool),
    U64(u64),
    I64(i64),
    F64(f64),
    Str(String),
}

impl From<Scalar> for Value {
    fn from(s: Scalar) -> Self {
        match s {
            Scalar::Null => Value::Null,
            Scalar::Bool(b) => Value::Bool(b),
            Scalar::U64(u) => Value::U64(u),
            Scalar::I64(i) => Value::I64(i),
            Scalar::F64(x) => Value::F64(x),
            Scalar::Str(text) => Value::Str(Cow::Owned(text)),
        }
    }
}

impl Serialize for Record {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(3 + self.fields.len()))?;
        map.serialize_entry("type", &self.kind)?;
        map.serialize_entry("t", &self.t)?;
        map.serialize_entry("phase", &self.phase)?;
        for (name, value) in self.fields.iter() {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Record {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(RecordVisitor)
    }
}

struct RecordVisitor;

impl<'de> Visitor<'de> for RecordVisitor {
    type Value = Record;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a record: an object with type, t, phase and scalar fields")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Record, A::Error> {
        let (mut kind, mut t, mut phase) = (None, None, None);
        let mut fields = Fields::new();
        while let Some(name) = map.next_key::<String>()? {
            match name.as_str() {
                "type" => kind = Some(map.next_value::<String>()?),
                "t" => t = Some(map.next_value::<f64>()?),
                "phase" => phase = Some(map.next_value::<PhaseId>()?),
                _ => {
                    let value = map.next_value::<Value>()?;
                    fields.push(name, value);
                }
            }
        }
        let kind = kind.ok_or_else(|| de::Error::missing_field("type"))?;
        if BUILT_IN.contains(&kind.as_str()) {
            return Err(de::Error::custom(format_args!("malformed {kind} event")));
        }
        Ok(Record {
            t: t.ok_or_else(|| de::Error::missing_field("t"))?,
            phase: phase.ok_or_else(|| de::Error::missing_field("phase"))?,
            kind: Cow::Owned(kind),
            fields,
        })
    }
}
