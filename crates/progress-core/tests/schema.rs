//! The JSON schema of events, version 1: each event's exact JSON form, and round trips.

use progress_core::{
    Event, Fields, ImageFormat, Level, Outcome, PreviewImage, Record, RecordType, RunSummary,
    SCHEMA_VERSION, Value,
};

/// A record the work defines: a label and optional values.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    frame: u64,
    label: &'static str,
    level: Option<f32>,
    note: Option<&'static str>,
}

impl RecordType for Sample {
    const KIND: &'static str = "sample";

    fn to_fields(&self) -> Fields {
        let fields = Fields::new()
            .with("frame", self.frame)
            .with("label", self.label);
        fields.with("level", self.level).with("note", self.note)
    }

    fn from_fields(_: &Fields) -> Option<Self> {
        None // not needed here
    }
}

fn check(event: Event, json: &str) {
    let value: serde_json::Value = serde_json::from_str(json).expect("expected JSON is valid");
    assert_eq!(serde_json::to_value(&event).unwrap(), value, "{event:?}");
    let back: Event = serde_json::from_str(json).unwrap();
    assert_eq!(back, event);
}

#[test]
fn schema_version_is_1() {
    assert_eq!(SCHEMA_VERSION, 1);
}

#[test]
fn every_event_type() {
    check(
        Event::RunStarted {
            schema: 1,
            t: 0.0,
            tick_ms: 100,
        },
        r#"{"type":"run_started","schema":1,"t":0.0,"tick_ms":100}"#,
    );
    check(
        Event::PhaseStarted {
            t: 0.5,
            id: 2,
            parent: Some(1),
            name: "Processing faces".into(),
            total: Some(100),
            unit: "frames".into(),
            weight: 1.0,
        },
        r#"{"type":"phase_started","t":0.5,"id":2,"parent":1,"name":"Processing faces",
            "total":100,"unit":"frames","weight":1.0}"#,
    );
    check(
        Event::Progress {
            t: 1.25,
            id: 2,
            pos: 48,
            total: None,
            rate: Some(40.5),
            eta: None,
            message: Some("frame 48".into()),
        },
        r#"{"type":"progress","t":1.25,"id":2,"pos":48,"total":null,"rate":40.5,"eta":null,
            "message":"frame 48"}"#,
    );
    check(
        Event::RunProgress {
            t: 2.0,
            fraction: 0.5,
            eta: Some(2.0),
        },
        r#"{"type":"run_progress","t":2.0,"fraction":0.5,"eta":2.0}"#,
    );
    check(
        Event::Message {
            t: 3.0,
            phase: None,
            level: Level::Warn,
            text: "no adapter".into(),
        },
        r#"{"type":"message","t":3.0,"phase":null,"level":"warn","text":"no adapter"}"#,
    );
    check(
        Event::Preview {
            t: 3.5,
            phase: 4,
            frame: 16,
            image: PreviewImage {
                width: 1,
                height: 1,
                format: ImageFormat::Rgb8,
                data: vec![255, 0, 128],
            },
        },
        r#"{"type":"preview","t":3.5,"phase":4,"frame":16,"width":1,"height":1,"format":"rgb8",
            "data":"/wCA"}"#,
    );
    check(
        Event::Record(Record::new(
            4.0,
            2,
            &Sample {
                frame: 7,
                label: "dark",
                level: None,
                note: None,
            },
        )),
        r#"{"type":"sample","t":4.0,"phase":2,"frame":7,"label":"dark","level":null,"note":null}"#,
    );
    check(
        Event::Record(Record::new(
            4.5,
            2,
            &Sample {
                frame: 8,
                label: "dark",
                level: Some(0.125),
                note: Some("ok"),
            },
        )),
        r#"{"type":"sample","t":4.5,"phase":2,"frame":8,"label":"dark","level":0.125,"note":"ok"}"#,
    );
    check(
        Event::PhaseFinished {
            t: 5.0,
            id: 2,
            outcome: Outcome::Cancelled,
            error: None,
            pos: 48,
            total: Some(100),
            elapsed: 4.5,
        },
        r#"{"type":"phase_finished","t":5.0,"id":2,"outcome":"cancelled","error":null,"pos":48,
            "total":100,"elapsed":4.5}"#,
    );
    check(
        Event::RunFinished {
            t: 6.0,
            summary: RunSummary {
                elapsed: 6.0,
                cancelled: true,
                phases: 3,
                completed: 1,
                failed: 0,
                cancelled_phases: 2,
                abandoned: 0,
                dropped_previews: 5,
                sink_failures: 1,
            },
        },
        r#"{"type":"run_finished","t":6.0,"summary":{"elapsed":6.0,"cancelled":true,"phases":3,
            "completed":1,"failed":0,"cancelled_phases":2,"abandoned":0,"dropped_previews":5,
            "sink_failures":1}}"#,
    );
}

#[test]
fn bad_base64_is_an_error() {
    let json = r#"{"type":"preview","t":0.0,"phase":1,"frame":0,"width":1,"height":1,
                   "format":"png","data":"not base64!"}"#;
    assert!(serde_json::from_str::<Event>(json).is_err());
}

/// A record's line, byte for byte: its fields in order after `type`, `t` and `phase`, an `f32`
/// printed as an `f32` (shortest digits), `None` as `null`. (face-proc's tests hold its
/// `face_status` lines to the schema the same way.)
#[test]
fn a_record_line_keeps_its_field_order_and_number_formats() {
    let sample = Sample {
        frame: 3,
        label: "aligned",
        level: Some(0.108_148_07),
        note: None,
    };
    let line = serde_json::to_string(&Event::Record(Record::new(0.870857434, 4, &sample))).unwrap();
    assert_eq!(
        line,
        r#"{"type":"sample","t":0.870857434,"phase":4,"frame":3,"label":"aligned","level":0.10814807,"note":null}"#
    );
    let back: Event = serde_json::from_str(&line).unwrap();
    let Event::Record(record) = &back else {
        panic!("{back:?}")
    };
    assert_eq!(record.kind, "sample");
    assert_eq!(serde_json::to_string(&back).unwrap(), line);
}

#[test]
fn record_values_compare_as_their_json_round_trip() {
    check_eq(Value::F32(0.1), Value::F64(0.1), true);
    check_eq(Value::F32(0.1), Value::F64(0.1000001), false);
    check_eq(Value::U64(5), Value::I64(5), true);
    check_eq(Value::I64(-1), Value::U64(u64::MAX), false);
    check_eq(Value::Null, Value::from(None::<f32>), true);
    check_eq(Value::from("a"), Value::Str("a".to_string().into()), true);
}

fn check_eq(a: Value, b: Value, equal: bool) {
    assert_eq!(a == b, equal, "{a:?} == {b:?}");
    assert_eq!(b == a, equal, "{b:?} == {a:?}");
}

#[test]
fn a_malformed_built_in_event_is_not_taken_for_a_record() {
    let json = r#"{"type":"progress","t":1.0,"phase":2,"frame":3}"#;
    assert!(serde_json::from_str::<Event>(json).is_err());
}

#[test]
fn a_record_needs_its_time_and_phase_and_scalar_values() {
    for json in [
        r#"{"type":"x","phase":2}"#,
        r#"{"type":"x","t":1.0}"#,
        r#"{"type":"x","t":1.0,"phase":2,"list":[1]}"#,
    ] {
        assert!(serde_json::from_str::<Event>(json).is_err(), "{json}");
    }
}
