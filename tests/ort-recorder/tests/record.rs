//! The recorder between `ort` and the real ONNX Runtime, loaded the way facesync loads it
//! (`ort::init_from`): every run's tensors land as `.npy` files with the right names, types,
//! shapes and bytes, sequence numbers stay unique under concurrent runs, and the results `ort`
//! gets are the real library's.
//!
//! Needs the real library in `ORT_DYLIB_PATH` (as `cargo xtask test` sets it). Under
//! `cargo xtask test` (`FACESYNC_REQUIRE_ORT=1`) a missing one fails the test; in a bare
//! `cargo test` the test prints why it is skipped and returns. The model is written here, byte
//! by byte: no Python needed.
#![allow(clippy::print_stderr)]

use std::path::{Path, PathBuf};

use half::f16;
use ort::session::Session;
use ort::value::{DynValue, Tensor};

/// The real ONNX Runtime library, or `None` (skip) outside `cargo xtask test`.
fn real_library() -> Option<PathBuf> {
    let found = std::env::var_os("ORT_DYLIB_PATH")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .filter(|p| p.is_file());
    if found.is_none() {
        let why = "ORT_DYLIB_PATH does not name an ONNX Runtime library";
        assert!(
            std::env::var_os("FACESYNC_REQUIRE_ORT").is_none_or(|v| v != "1"),
            "{why} (FACESYNC_REQUIRE_ORT=1)"
        );
        eprintln!("skipped: {why}");
    }
    found
}

/// The recorder that cargo built beside this test (`target/<profile>/deps`).
fn recorder() -> PathBuf {
    let name = format!(
        "{}facesync_ort_recorder{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    [deps.join(&name), deps.parent().unwrap().join(&name)]
        .into_iter()
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} not built next to {}", exe.display()))
}

// --- A three-node ONNX model, protobuf by hand ---

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn int_field(field: u64, v: u64, out: &mut Vec<u8>) {
    varint(field << 3, out);
    varint(v, out);
}

fn bytes_field(field: u64, bytes: &[u8], out: &mut Vec<u8>) {
    varint((field << 3) | 2, out);
    varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// `ValueInfoProto` of a tensor: name, ONNX element type, static dimensions.
fn value_info(name: &str, element: u64, dims: &[u64]) -> Vec<u8> {
    let mut shape = Vec::new();
    for &d in dims {
        let mut dim = Vec::new();
        int_field(1, d, &mut dim);
        bytes_field(1, &dim, &mut shape);
    }
    let mut tensor = Vec::new();
    int_field(1, element, &mut tensor);
    bytes_field(2, &shape, &mut tensor);
    let mut ty = Vec::new();
    bytes_field(1, &tensor, &mut ty);
    let mut out = Vec::new();
    bytes_field(1, name.as_bytes(), &mut out);
    bytes_field(2, &ty, &mut out);
    out
}

fn node(op: &str, inputs: &[&str], output: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for i in inputs {
        bytes_field(1, i.as_bytes(), &mut out);
    }
    bytes_field(2, output.as_bytes(), &mut out);
    bytes_field(4, op.as_bytes(), &mut out);
    out
}

const FLOAT: u64 = 1;
const INT64: u64 = 7;
const FLOAT16: u64 = 10;

/// y = a + a (float32 [2,3]), c = b (int64 [3]), hh = h (float16 [4]); opset 13.
fn model() -> Vec<u8> {
    let mut graph = Vec::new();
    bytes_field(1, &node("Add", &["a", "a"], "y"), &mut graph);
    bytes_field(1, &node("Identity", &["b"], "c"), &mut graph);
    bytes_field(1, &node("Identity", &["h"], "hh"), &mut graph);
    bytes_field(2, b"tiny", &mut graph);
    bytes_field(11, &value_info("a", FLOAT, &[2, 3]), &mut graph);
    bytes_field(11, &value_info("b", INT64, &[3]), &mut graph);
    bytes_field(11, &value_info("h", FLOAT16, &[4]), &mut graph);
    bytes_field(12, &value_info("y", FLOAT, &[2, 3]), &mut graph);
    bytes_field(12, &value_info("c", INT64, &[3]), &mut graph);
    bytes_field(12, &value_info("hh", FLOAT16, &[4]), &mut graph);
    let mut opset = Vec::new();
    int_field(2, 13, &mut opset);
    let mut model = Vec::new();
    int_field(1, 8, &mut model);
    bytes_field(7, &graph, &mut model);
    bytes_field(8, &opset, &mut model);
    model
}

// --- Runs and checks ---

struct Inputs {
    a: Vec<f32>,
    b: Vec<i64>,
    h: Vec<f16>,
}

fn inputs(k: i64) -> Inputs {
    Inputs {
        a: (0..6).map(|i| i as f32 * 0.25 - k as f32).collect(),
        b: vec![k, -k, 1 << 40],
        h: [0.5, -1.0, 65504.0, k as f32].map(f16::from_f32).to_vec(),
    }
}

fn run(session: &mut Session, k: i64) {
    let i = inputs(k);
    let values: Vec<(String, DynValue)> = vec![
        (
            "a".into(),
            Tensor::from_array((vec![2i64, 3], i.a.clone()))
                .unwrap()
                .into_dyn(),
        ),
        (
            "b".into(),
            Tensor::from_array((vec![3i64], i.b.clone()))
                .unwrap()
                .into_dyn(),
        ),
        (
            "h".into(),
            Tensor::from_array((vec![4i64], i.h.clone()))
                .unwrap()
                .into_dyn(),
        ),
    ];
    let out = session.run(values).unwrap();
    let (_, y) = out["y"].try_extract_tensor::<f32>().unwrap();
    assert_eq!(y, i.a.iter().map(|v| v + v).collect::<Vec<_>>());
    let (_, c) = out["c"].try_extract_tensor::<i64>().unwrap();
    assert_eq!(c, i.b);
}

/// Checks one recorded file: the exact `.npy` 1.0 header and the little-endian data.
fn check_npy(path: &Path, descr: &str, shape: &str, data: &[u8]) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00", "{}", path.display());
    let len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    assert_eq!((10 + len) % 64, 0, "{}", path.display());
    let header = std::str::from_utf8(&bytes[10..10 + len]).unwrap();
    assert_eq!(
        header.trim_end(),
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}"),
        "{}",
        path.display()
    );
    assert_eq!(&bytes[10 + len..], data, "{}", path.display());
}

fn le<T: Copy, const N: usize>(values: &[T], to: fn(T) -> [u8; N]) -> Vec<u8> {
    values.iter().flat_map(|&v| to(v)).collect()
}

fn check_run(dir: &Path, stem: &str, seq: u64, k: i64) {
    let i = inputs(k);
    let f = |side: &str, name: &str| dir.join(format!("{stem}-{seq:06}-{side}-{name}.npy"));
    let a = le(&i.a, f32::to_le_bytes);
    let y = le(
        &i.a.iter().map(|v| v + v).collect::<Vec<_>>(),
        f32::to_le_bytes,
    );
    let b = le(&i.b, i64::to_le_bytes);
    let h = le(&i.h, f16::to_le_bytes);
    check_npy(&f("in", "a"), "<f4", "(2, 3)", &a);
    check_npy(&f("in", "b"), "<i8", "(3,)", &b);
    check_npy(&f("in", "h"), "<f2", "(4,)", &h);
    check_npy(&f("out", "y"), "<f4", "(2, 3)", &y);
    check_npy(&f("out", "c"), "<i8", "(3,)", &b);
    check_npy(&f("out", "hh"), "<f2", "(4,)", &h);
}

#[test]
fn records_every_run_through_the_real_library() {
    let Some(real) = real_library() else { return };
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("ort-recorder-{}", std::process::id()));
    let rec = dir.join("rec");
    std::fs::create_dir_all(&dir).unwrap();
    let model_path = dir.join("tiny.onnx");
    std::fs::write(&model_path, model()).unwrap();
    // SAFETY: the only test of this binary, and no thread of it reads the environment yet
    // (the recorder reads these when `ort` loads it, below).
    unsafe {
        std::env::set_var("FACESYNC_RECORD_ORT", &real);
        std::env::set_var("FACESYNC_RECORD_DIR", &rec);
    }
    ort::init_from(recorder())
        .expect("ort loads the recorder")
        .commit();

    // Two runs of a session from a file: `tiny`, 0 then 1.
    let mut s = Session::builder()
        .unwrap()
        .commit_from_file(&model_path)
        .unwrap();
    run(&mut s, 1);
    run(&mut s, 2);
    check_run(&rec, "tiny", 0, 1);
    check_run(&rec, "tiny", 1, 2);

    // A session from memory: `mem`, its own count.
    let mut m = Session::builder()
        .unwrap()
        .commit_from_memory(&model())
        .unwrap();
    run(&mut m, 3);
    check_run(&rec, "mem", 0, 3);

    // Two more sessions of the file, run side by side: every number from 2 on is taken once.
    let per_thread = 20;
    std::thread::scope(|scope| {
        for t in 0..2 {
            let model_path = &model_path;
            scope.spawn(move || {
                let mut s = Session::builder()
                    .unwrap()
                    .commit_from_file(model_path)
                    .unwrap();
                for _ in 0..per_thread {
                    run(&mut s, 100 + t);
                }
            });
        }
    });
    let total = 2 + 2 * per_thread;
    let mut names: Vec<String> = std::fs::read_dir(&rec)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert!(
        names.iter().all(|n| !n.starts_with('.')),
        "temporary files left: {names:?}"
    );
    assert_eq!(names.len(), 6 * (total + 1) as usize, "{names:?}");
    for seq in 2..total {
        let k = (0..2)
            .map(|t| 100 + t)
            .find(|&k| {
                let a = std::fs::read(rec.join(format!("tiny-{seq:06}-in-a.npy"))).unwrap();
                a.ends_with(&le(&inputs(k).a, f32::to_le_bytes))
            })
            .unwrap_or_else(|| panic!("run {seq}: inputs of neither thread"));
        check_run(&rec, "tiny", seq, k);
    }
    drop((s, m));
    std::fs::remove_dir_all(&dir).unwrap();
}
