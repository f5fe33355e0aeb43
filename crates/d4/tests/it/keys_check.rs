//! `d4 keys check` on badkeys' test keys (`../shared/vectors/keys/`): the text lines, the
//! JSON objects and the exit status bits, with the expected values taken from the
//! vectors' `expected.json` (written by badkeys 0.0.21) or stated by hand.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn keys_dir() -> PathBuf {
    let d = d4_testkit::shared_dir().join("vectors/keys");
    assert!(
        d.join("expected.json").is_file(),
        "missing key vectors in {}",
        d.display()
    );
    d
}

fn key(name: &str) -> String {
    keys_dir().join(name).display().to_string()
}

fn check(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_d4"))
        .args(["keys", "check"])
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("panicked"),
        "d4 keys check panicked: {stderr}"
    );
    out
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

fn json_lines(out: &Output) -> Vec<Value> {
    stdout(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect()
}

fn expected(name: &str) -> Value {
    let all: Value =
        serde_json::from_slice(&std::fs::read(keys_dir().join("expected.json")).unwrap()).unwrap();
    all["keys"][name].clone()
}

#[test]
fn text_lines_and_exit_bits() {
    let crt = key("rsa-fermat.crt");
    let out = check(&[&crt]);
    assert_eq!(
        stdout(&out),
        format!("fermat vulnerability, rsa[2048], {crt}\n")
    );
    assert_eq!(code(&out), 4);

    // a clean key prints nothing (and "key ok" with -a) and exits 0
    let ok = key("rsa-ok.key");
    let out = check(&[&ok]);
    assert_eq!((stdout(&out).as_str(), code(&out)), ("", 0));
    let out = check(&["-a", &ok]);
    assert_eq!(stdout(&out), format!("rsa[2048] key ok, {ok}\n"));

    // unparseable: a warning on stderr and bit 2; with a vulnerable key too: 6
    let bad = key("rsanzero.key");
    let out = check(&[&bad]);
    assert_eq!(stderr(&out), format!("WARNING: Unparseable input, {bad}\n"));
    assert_eq!(code(&out), 2);
    let out = check(&[&bad, &crt]);
    assert_eq!(code(&out), 6);
    let out = check(&[&key("unsupported/sm2-pub.key")]);
    assert!(stderr(&out).starts_with("WARNING: Unsupported key type, "));
    assert_eq!(code(&out), 2);

    // a missing file is an error (bit 1), the other files are still checked
    let out = check(&["/nonexistent/key.pem", &crt]);
    assert_eq!(code(&out), 5);
    assert!(stderr(&out).contains("ERROR: /nonexistent/key.pem"));

    // -w adds the warnings: rsapoly32.key is 2047 bits
    let out = check(&["-w", &key("rsapoly32.key")]);
    let p = key("rsapoly32.key");
    assert_eq!(
        stdout(&out),
        format!(
            "rsapoly/completeftp vulnerability, rsa[2047], {p}\nrsawarnings/too_small vulnerability, rsa[2047], {p}\n"
        )
    );
    // no file, no options: an error
    assert_eq!(code(&check(&[])), 1);
    // an unknown check name: an error
    assert_eq!(code(&check(&["-c", "nosuch", &crt])), 1);
}

#[test]
fn json_objects_carry_badkeys_fields() {
    let name = "rsa-small-d.key";
    let out = check(&["--json", "-w", &key(name)]);
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 1);
    let want = expected(name);
    let got = &lines[0];
    assert_eq!(got["type"], want["type"]);
    assert_eq!(got["bits"], want["bits"]);
    assert_eq!(got["spkisha256"], want["spkisha256"]);
    assert_eq!(
        got["results"]["smalld"]["d"],
        want["results"]["smalld"]["d"]
    );
    assert_eq!(
        got["results"]["rsawarnings"],
        want["results"]["rsawarnings"]
    );
    assert_eq!(got["where"], key(name));
    assert_eq!(code(&out), 4);

    // unparseable inputs are printed with their error; clean ones only with -a
    let out = check(&["--json", &key("rsa-e1.key"), &key("rsa-ok.key")]);
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["type"], "unparseable");
    assert_eq!(lines[0]["error"], expected("rsa-e1.key")["error"]);
    let out = check(&["--json", "-a", &key("rsa-ok.key")]);
    assert_eq!(json_lines(&out)[0]["results"], serde_json::json!({}));
}

#[test]
fn hex_moduli_blocklist_and_bad_primes() {
    // -m: one object per modulus, named after it, p and q from badkeys
    let out = check(&["--json", "-m", &key("rsa-fermat-hexmodulus.txt")]);
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 1);
    let name = lines[0]["where"].as_str().unwrap().to_string();
    let want = expected(&name);
    assert!(want.is_object(), "{name} not in expected.json");
    assert_eq!(
        lines[0]["results"]["fermat"]["p"],
        want["results"]["fermat"]["p"]
    );
    assert_eq!(
        lines[0]["results"]["fermat"]["q"],
        want["results"]["fermat"]["q"]
    );

    let bl = key("blocklist/blocklist.dat");
    let out = check(&[
        "--blocklist",
        &bl,
        &key("rsa-debianweak.key"),
        &key("rsa-ok.key"),
    ]);
    assert_eq!(
        stdout(&out),
        format!(
            "blocklist/debianopenssl vulnerability, rsa[2048], {}\n",
            key("rsa-debianweak.key")
        )
    );
    // without the blocklist the key looks clean
    assert_eq!(code(&check(&[&key("rsa-debianweak.key")])), 0);

    let primes = key("primes");
    let sp = key("rsa-sharedprimes.key");
    let out = check(&["--json", "--bad-primes", &primes, &sp]);
    let got = &json_lines(&out)[0]["results"]["sharedprimes"];
    let want = &expected("rsa-sharedprimes.key")["results"]["sharedprimes"];
    assert_eq!((&got["p"], &got["q"]), (&want["p"], &want["q"]));
    // a bad-primes folder that does not exist is an error
    assert_eq!(code(&check(&["--bad-primes", "/nonexistent", &sp])), 1);
}

/// The base64 body of a PEM file's first block, on one line.
fn pem_body(name: &str) -> String {
    let text = std::fs::read_to_string(keys_dir().join(name)).unwrap();
    let start = text.find("-----BEGIN").unwrap();
    text[start..]
        .lines()
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect()
}

#[test]
fn crt_lines_stdin_and_several_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let lines = dir.path().join("crts.txt");
    std::fs::write(
        &lines,
        format!(
            "{} host.example:443\nnot-base64!\n",
            pem_body("rsa-fermat.crt")
        ),
    )
    .unwrap();
    let ls = lines.display().to_string();
    let out = check(&["--crt-lines", &ls]);
    assert_eq!(
        stdout(&out),
        format!("fermat vulnerability, rsa[2048], {ls}[1] host.example:443\n")
    );
    assert_eq!(
        stderr(&out),
        format!("WARNING: Unparseable input, {ls}[2]\n")
    );
    assert_eq!(code(&out), 6);

    // stdin
    let mut child = Command::new(env!("CARGO_BIN_EXE_d4"))
        .args(["keys", "check", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pem = std::fs::read(keys_dir().join("rsa-roca.key")).unwrap();
    child.stdin.take().unwrap().write_all(&pem).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(stdout(&out), "roca vulnerability, rsa[2048], -\n");
    assert_eq!(code(&out), 4);

    // two PEM blocks in one file: one result each, numbered
    let both = dir.path().join("both.pem");
    let mut bytes = std::fs::read(keys_dir().join("rsa-ok.key")).unwrap();
    bytes.extend(std::fs::read(keys_dir().join("rsa-roca.key")).unwrap());
    std::fs::write(&both, bytes).unwrap();
    let b = both.display().to_string();
    let out = check(&["-a", &b]);
    assert_eq!(
        stdout(&out),
        format!("rsa[2048] key ok, {b}[1]\nroca vulnerability, rsa[2048], {b}[2]\n")
    );

    // no key at all
    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, "nothing here\n").unwrap();
    let out = check(&[&empty.display().to_string()]);
    assert!(stderr(&out).starts_with("WARNING: No key found, "));
    assert_eq!(code(&out), 2);
}

/// Thousands of `-m` lines (more than one block of lines checked in parallel, the known-bad
/// primes reduced per block): the findings come out in input order whatever the thread count.
#[test]
fn many_lines_in_order_on_several_threads() {
    let fermat = std::fs::read_to_string(keys_dir().join("rsa-fermat-hexmodulus.txt")).unwrap();
    let fermat = fermat.trim();
    // rsa-ok.key's modulus (`openssl rsa -pubin -in rsa-ok.key -noout -modulus`)
    let ok = "DFEEE7DE75559DC664336E5174D9271AE01F90A330718696A9018DE02D35CC6425A49BC39970DD54CF98362E296704400ACDB557E87A2CBCBB9A2798096672F4D57F01F8E8BF1644227AC25F79F21E0071B58695F9BB5A8C5CC51384F73C9BEE13985CE8AC7F29AC14D4DBC4FA4BD0022AC60DC5507B9D34AC471E3E075ECC187DC12034CA4FEA3DB73C860AD1EB3DB9E511A87732E0262EAFEEE69776F425843B88C2321321C75A92CA485F4F717422352332E411D1D776BE20BAD47CFC3D14A11DD149F8962F073801C7401AF2745F41CADED09AC0F1711A85376242C83886B45D81D3948AAE0F2AB759AC4826333FB434589416D8975505FAA1DCCB80438D";
    // rsa-sharedprimes.key's modulus: one of its primes is in primes/primes2048.dat
    let primes = key("primes");
    let out = check(&[
        "--json",
        "--bad-primes",
        &primes,
        &key("rsa-sharedprimes.key"),
    ]);
    let shared = json_lines(&out)[0]["n"].as_str().unwrap().to_string();
    let n = 2_600;
    let line = |i: usize| match (i % 7, i % 11) {
        (3, _) => ("fermat vulnerability", fermat),
        (_, 5) => ("sharedprimes vulnerability", shared.as_str()),
        _ => ("key ok", ok),
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("moduli.txt");
    let text: String = (0..n).map(|i| format!("{}\n", line(i).1)).collect();
    std::fs::write(&path, text).unwrap();
    let want: String = (0..n)
        .map(|i| match line(i) {
            ("key ok", m) => format!("rsa[2048] key ok, modulus {}\n", m.to_ascii_lowercase()),
            (what, m) => format!("{what}, rsa[2048], modulus {}\n", m.to_ascii_lowercase()),
        })
        .collect();
    let p = path.display().to_string();
    for threads in ["1", "2", "3"] {
        let out = check(&[
            "-a",
            "--bad-primes",
            &primes,
            "--threads",
            threads,
            "-m",
            &p,
        ]);
        assert_eq!(code(&out), 4, "threads {threads}");
        assert!(
            stdout(&out) == want,
            "output out of order with {threads} threads"
        );
    }
}
