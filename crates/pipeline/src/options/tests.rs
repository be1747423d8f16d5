use proptest::prelude::*;

use super::*;

/// The schema and the struct are one list: the same names in the same order, and the schema's
/// defaults read back as `RunOptions::default()`.
#[test]
fn the_schema_lists_every_field_with_its_default() {
    let json = serde_json::to_value(RunOptions::default()).unwrap();
    // The struct's fields in their order (serde writes them so) are the schema's names.
    let text = serde_json::to_string(&RunOptions::default()).unwrap();
    let fields: Vec<&str> = text
        .split("\":")
        .filter_map(|before| before.rsplit_once('"').map(|(_, key)| key))
        .collect();
    let names: Vec<&str> = RunOptions::SCHEMA.iter().map(|i| i.name).collect();
    assert_eq!(names, fields);
    let mut from_schema = RunOptions {
        resolution: 512,
        steps: 1,
        chunk: 1,
        no_face: NoFacePolicy::Error,
        backend: Backend::Cpu,
        length: LengthPolicy::Trim,
        model: ModelSpec::Wav2Lip("x.onnx".into()),
        model_weight: 1.0,
        silence_threshold: SilenceThreshold::Off,
    };
    for info in RunOptions::SCHEMA {
        let text = info.kind.default_text();
        from_schema
            .set(info.name, OptionValue::Text(&text))
            .unwrap();
        // A number as JSON has it (-50.0) and as text (-50) are the same value.
        match json[info.name].as_f64() {
            Some(number) => assert_eq!(Some(number), text.parse().ok(), "{}", info.name),
            None => assert_eq!(
                json[info.name].as_str(),
                Some(text.as_str()),
                "{}",
                info.name
            ),
        }
    }
    assert_eq!(from_schema, RunOptions::default());
}

#[test]
fn every_refusal_names_the_option_and_the_problem() {
    // option = value (text, or int/float in the value's own syntax) → the message.
    let cases = r#"
        stpes = int 2 → unknown option `stpes` (known: resolution, steps,
        resolution = int 300 → resolution 300 is not supported (256 or 512)
        resolution = big → resolution: "big" is not a whole number
        steps = int 0 → steps 0 is out of range (1 to 100)
        steps = int 101 → steps 101 is out of range (1 to 100)
        steps = int -3 → steps -3 is out of range (1 to 100)
        steps = int 4000000000 → steps 4000000000 is out of range
        steps = float 2.5 → steps: 2.5 is not a whole number
        chunk = int 0 → chunk 0 is out of range (1 to 256)
        chunk = 100000 → chunk 100000 is out of range (1 to 256)
        no_face = skip → no_face: unknown no-face policy "skip": expected one of pass, error, interpolate
        no_face = int 1 → no_face: expected text, got 1
        backend = tpu → backend: unknown backend "tpu": expected one of auto, gpu, cpu
        length = cut → length: unknown length policy "cut"
        model = sadtalker:x → model: unknown model `sadtalker:x`
        model_weight = float 1.5 → model weight 1.5 is out of range (0 to 1)
        model_weight = strong → model_weight: "strong" is not a number
        model_weight = float NaN → model weight NaN is out of range (0 to 1)
        silence_threshold = quiet → silence_threshold: "quiet" is not a number
        silence_threshold = int 3 → silence threshold 3 is out of range (-100 to 0, or off)
        silence_threshold = float -200 → silence threshold -200 is out of range (-100 to 0, or off)
    "#;
    let cases = cases.lines().filter(|l| !l.trim().is_empty()).map(|line| {
        let (name, rest) = line.trim().split_once(" = ").unwrap();
        let (value, expected) = rest.split_once(" → ").unwrap();
        let value = match value.split_once(' ') {
            Some(("int", v)) => OptionValue::Int(v.parse().unwrap()),
            Some(("float", v)) => OptionValue::Float(v.parse().unwrap()),
            _ => OptionValue::Text(value),
        };
        (name, value, expected)
    });
    let mut checked = 0;
    for (name, value, expected) in cases {
        checked += 1;
        let mut options = RunOptions::default();
        let err = options.set(name, value).unwrap_err();
        assert!(err.to_string().contains(expected), "{name}={value}: {err}");
        assert_eq!(err.option, name);
        assert_eq!(err.unknown, name == "stpes");
    }
    assert_eq!(checked, 21);
}

#[test]
fn json_reads_names_refuses_unknown_fields_and_checks_limits_in_validate() {
    let options: RunOptions = serde_json::from_str(
        r#"{"no_face":"interpolate","backend":"cpu","length":"trim","model":"edtalk:/m/e.onnx","steps":3}"#,
    )
    .unwrap();
    assert_eq!(options.no_face, NoFacePolicy::Interpolate);
    assert_eq!(options.backend, Backend::Cpu);
    assert_eq!(options.length, LengthPolicy::Trim);
    assert_eq!(options.model, ModelSpec::EdTalk("/m/e.onnx".into()));
    assert_eq!((options.steps, options.resolution), (3, 256));
    let err = serde_json::from_str::<RunOptions>(r#"{"stpes":3}"#).unwrap_err();
    assert!(err.to_string().contains("unknown field `stpes`"), "{err}");
    // The silence threshold: a number, or "off" (the command line's text is read too).
    for (json, level) in [
        (
            r#"{"silence_threshold":-42.5}"#,
            SilenceThreshold::Dbfs(-42.5),
        ),
        (r#"{"silence_threshold":"off"}"#, SilenceThreshold::Off),
        (
            r#"{"silence_threshold":"-30"}"#,
            SilenceThreshold::Dbfs(-30.0),
        ),
        ("{}", SilenceThreshold::Dbfs(-50.0)),
    ] {
        let options: RunOptions = serde_json::from_str(json).unwrap();
        assert_eq!(options.silence_threshold, level, "{json}");
        let again = serde_json::to_string(&options).unwrap();
        assert_eq!(serde_json::from_str::<RunOptions>(&again).unwrap(), options);
    }
    let err = serde_json::from_str::<RunOptions>(r#"{"silence_threshold":"loud"}"#).unwrap_err();
    assert!(
        err.to_string().contains("\"loud\" is not a number"),
        "{err}"
    );
    let too_many: RunOptions = serde_json::from_str(r#"{"steps":500}"#).unwrap();
    let err = too_many.validate().unwrap_err();
    assert_eq!(err.to_string(), "steps 500 is out of range (1 to 100)");
}

proptest! {
    /// Whatever a front end sends, `set` either takes it within the limits or refuses it,
    /// and text, numbers and JSON agree.
    #[test]
    fn whole_numbers_are_taken_exactly_within_the_limits(name in "(resolution|steps|chunk)", v in -1000i64..1000) {
        let mut by_int = RunOptions::default();
        let mut by_text = RunOptions::default();
        let int = by_int.set(&name, OptionValue::Int(v));
        let text = by_text.set(&name, OptionValue::Text(&format!(" {v}")));
        prop_assert_eq!(int.is_ok(), text.is_ok());
        prop_assert_eq!(&by_int, &by_text);
        let OptionKind::Int { min, max, only, .. } = RunOptions::info(&name).unwrap().kind else {
            unreachable!()
        };
        let allowed = (min..=max).contains(&v) && (only.is_empty() || only.contains(&v));
        prop_assert_eq!(int.is_ok(), allowed);
        if allowed {
            let json = serde_json::to_value(&by_int).unwrap();
            prop_assert_eq!(json[name.as_str()].as_i64(), Some(v));
            prop_assert!(by_int.validate().is_ok());
        } else {
            prop_assert_eq!(by_int, RunOptions::default());
        }
    }

    #[test]
    fn named_options_round_trip_through_their_text(no_face in 0usize..3, backend in 0usize..3, length in 0usize..2) {
        let mut options = RunOptions::default();
        options.set("no_face", OptionValue::Text(NoFacePolicy::NAMES[no_face])).unwrap();
        options.set("backend", OptionValue::Text(&Backend::NAMES[backend].to_uppercase())).unwrap();
        options.set("length", OptionValue::Text(LengthPolicy::NAMES[length])).unwrap();
        let json = serde_json::to_string(&options).unwrap();
        prop_assert_eq!(serde_json::from_str::<RunOptions>(&json).unwrap(), options);
    }
}

/// Display then FromStr gives the value back, in any case and with blanks around; any other
/// text is an error that names the option, the text and every accepted name.
fn round_trip<T>(all: &[T], names: &[&str], upper: bool, pad: &str) -> Result<(), TestCaseError>
where
    T: Copy + PartialEq + std::fmt::Debug + std::fmt::Display + std::str::FromStr,
    T::Err: std::fmt::Debug,
{
    prop_assert_eq!(all.len(), names.len());
    for (v, name) in all.iter().zip(names) {
        prop_assert_eq!(&v.to_string(), name);
        let text = if upper {
            name.to_uppercase()
        } else {
            name.to_string()
        };
        prop_assert_eq!(format!("{pad}{text}{pad}").parse::<T>().ok(), Some(*v));
    }
    Ok(())
}

proptest! {
    #[test]
    fn names_round_trip(upper in any::<bool>(), pad in " {0,2}") {
        round_trip(NoFacePolicy::ALL, NoFacePolicy::NAMES, upper, &pad)?;
        round_trip(LengthPolicy::ALL, LengthPolicy::NAMES, upper, &pad)?;
        round_trip(&Backend::ALL, &Backend::NAMES, upper, &pad)?;
    }

    #[test]
    fn other_text_is_an_error_naming_it(s in "\\PC{0,12}") {
        let known = |names: &[&str]| names.iter().any(|n| n.eq_ignore_ascii_case(s.trim()));
        match s.parse::<NoFacePolicy>() {
            Ok(v) => prop_assert!(v.as_str().eq_ignore_ascii_case(s.trim())),
            Err(e) => {
                prop_assert!(!known(NoFacePolicy::NAMES));
                prop_assert_eq!(&e.value, &s);
                let text = e.to_string();
                prop_assert!(text.contains(&format!("no-face policy {s:?}")), "{}", text);
                prop_assert!(text.ends_with("expected one of pass, error, interpolate"), "{}", text);
            }
        }
        match s.parse::<LengthPolicy>() {
            Ok(v) => prop_assert!(v.as_str().eq_ignore_ascii_case(s.trim())),
            Err(e) => {
                prop_assert!(!known(LengthPolicy::NAMES));
                prop_assert!(e.to_string().ends_with("expected one of loop, trim"));
            }
        }
    }
}

#[test]
fn defaults_print_their_names() {
    let c = RunOptions::default();
    assert_eq!(
        (
            c.no_face.to_string(),
            c.backend.to_string(),
            c.length.to_string()
        ),
        ("pass".into(), "auto".into(), "loop".into())
    );
    assert_eq!(
        "Interpolate".parse::<NoFacePolicy>(),
        Ok(NoFacePolicy::Interpolate)
    );
    assert!("".parse::<LengthPolicy>().is_err());
}
