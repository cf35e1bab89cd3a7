//! The command line to cryptsetup's standard of care, as a table: each row
//! is a command, its standard input, the exit code, a fragment of the
//! message, and a check of the state afterwards (keyslots and passphrases
//! checked with the real cryptsetup, file contents, modes, symlink targets).
//! Runs with no terminal (standard input closed or piped), as CI does.
#![cfg(feature = "mock")]

mod common;

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

const K1: &[u8] = b"first passphrase";
const K2: &[u8] = b"\x00second\xffpassphrase\n";
const FAST: [&str; 4] = ["--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000"];

/// A fresh folder: `v.img` (LUKS2, K1 in keyslot 0, made by cryptsetup),
/// key files, a blank and an ext4-signed image, header backups of `v.img`
/// and of another volume, an existing file, a symlink to it, and a stored
/// secret.
struct Fx {
    dir: tempfile::TempDir,
    config: PathBuf,
    secret_id: String,
    data_size: u64,
}

fn cryptsetup(args: &[&str]) -> Output {
    Command::new("cryptsetup")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

impl Fx {
    fn new() -> Fx {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("keymgr.toml");
        std::fs::write(
            &config,
            format!(
                "backend = \"mock\"\n[context]\nproject_id = \"p\"\n[mock]\npath = {:?}\n",
                dir.path().join("store.sealed")
            ),
        )
        .unwrap();
        let mut fx = Fx {
            dir,
            config,
            secret_id: String::new(),
            data_size: 0,
        };
        fx.write("k1", K1);
        fx.write("k2", K2);
        fx.write("k2long", b"xxabcdefgh");
        fx.write("k2part", b"abcde");
        fx.write("empty", b"");
        fx.write("exists", b"keep me");
        fx.write("data", &[0x5a; 1000]);
        std::os::unix::fs::symlink(fx.p("exists"), fx.p("link")).unwrap();
        let big = std::fs::File::create(fx.p("big9m")).unwrap();
        big.set_len(9 << 20).unwrap();
        for img in ["v.img", "plain.img", "ext.img", "other.img"] {
            let f = std::fs::File::create(fx.p(img)).unwrap();
            f.set_len(20 << 20).unwrap();
        }
        let mut ext = std::fs::OpenOptions::new()
            .write(true)
            .open(fx.p("ext.img"))
            .unwrap();
        use std::io::Seek;
        ext.seek(std::io::SeekFrom::Start(1080)).unwrap();
        ext.write_all(&[0x53, 0xef]).unwrap();
        for img in ["v.img", "other.img"] {
            let out = cryptsetup(&[
                "luksFormat",
                "-q",
                "--type",
                "luks2",
                "--pbkdf",
                "pbkdf2",
                "--pbkdf-force-iterations",
                "1000",
                "--key-file",
                fx.s("k1"),
                fx.s(img),
            ]);
            assert!(out.status.success(), "{out:?}");
        }
        for (img, bak) in [("v.img", "same.bak"), ("other.img", "other.bak")] {
            let out = cryptsetup(&[
                "luksHeaderBackup",
                fx.s(img),
                "--header-backup-file",
                fx.s(bak),
            ]);
            assert!(out.status.success(), "{out:?}");
        }
        std::fs::hard_link(fx.p("v.img"), fx.p("v-hardlink")).unwrap();
        std::fs::File::create(fx.p("swap.img"))
            .unwrap()
            .set_len(1 << 20)
            .unwrap();
        let made = Command::new("mkswap")
            .arg(fx.p("swap.img"))
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(made || !common::tool("mkswap"), "mkswap failed");
        std::fs::copy(fx.p("v.img"), fx.p("v.orig")).unwrap();
        let dump = String::from_utf8(cryptsetup(&["luksDump", fx.s("v.img")]).stdout).unwrap();
        let offset: u64 = dump
            .lines()
            .find_map(|l| l.trim().strip_prefix("offset: "))
            .and_then(|l| l.split_whitespace().next())
            .unwrap()
            .parse()
            .unwrap();
        fx.data_size = (20 << 20) - offset;
        let out = fx.run(
            &["secret", "store", "--kind", "opaque", "--file", fx.s("k1")],
            None,
        );
        assert!(out.status.success(), "{out:?}");
        fx.secret_id = String::from_utf8(out.stdout).unwrap().trim().to_string();
        fx
    }
    fn p(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn s(&self, name: &str) -> &'static str {
        Box::leak(self.p(name).to_string_lossy().into_owned().into_boxed_str())
    }
    fn write(&self, name: &str, bytes: &[u8]) {
        std::fs::write(self.p(name), bytes).unwrap();
    }
    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.p(name)).unwrap()
    }
    fn mode(&self, name: &str) -> u32 {
        std::fs::symlink_metadata(self.p(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    }
    /// Expands `@name` to a path in the folder, `@ID` to the stored secret,
    /// `@END-100` to the data size less 100.
    fn arg(&self, a: &str) -> String {
        match a {
            "@ID" => self.secret_id.clone(),
            "@END-100" => (self.data_size - 100).to_string(),
            _ => match a.strip_prefix('@') {
                Some(name) => self.p(name).to_string_lossy().into_owned(),
                None => a.to_string(),
            },
        }
    }
    fn run(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_keymgr"));
        cmd.arg("--config").arg(&self.config);
        for a in args {
            cmd.arg(self.arg(a));
        }
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut child = cmd.spawn().unwrap();
        if let Some(bytes) = stdin {
            let mut w = child.stdin.take().unwrap();
            let bytes = bytes.to_vec();
            std::thread::spawn(move || {
                let _ = w.write_all(&bytes);
            });
        }
        child.wait_with_output().unwrap()
    }
    /// Whether cryptsetup opens `img` with key file `key`.
    fn opens(&self, img: &str, key: &str) -> bool {
        cryptsetup(&[
            "open",
            "--test-passphrase",
            "--key-file",
            self.s(key),
            self.s(img),
        ])
        .status
        .success()
    }
    /// The active keyslots cryptsetup sees.
    fn slots(&self, img: &str) -> Vec<u32> {
        let dump = String::from_utf8(cryptsetup(&["luksDump", self.s(img)]).stdout).unwrap();
        let mut in_slots = false;
        let mut slots = vec![];
        for l in dump.lines() {
            if l.starts_with("Keyslots:") {
                in_slots = true;
            } else if !l.starts_with(' ') && !l.starts_with('\t') {
                in_slots = false;
            } else if in_slots {
                if let Some((n, rest)) = l.trim().split_once(": ") {
                    if rest.starts_with("luks2") {
                        slots.push(n.parse().unwrap());
                    }
                }
            }
        }
        slots
    }
    fn uuid(&self, img: &str) -> String {
        String::from_utf8(cryptsetup(&["luksUUID", self.s(img)]).stdout)
            .unwrap()
            .trim()
            .to_string()
    }
    fn unchanged(&self) -> bool {
        self.read("v.img") == self.read("v.orig")
    }
}

/// One row: command, stdin (`None` = closed), exit code, message fragment
/// (in stderr, or stdout with --json), state check.
struct Row {
    name: &'static str,
    args: &'static [&'static str],
    stdin: Option<&'static [u8]>,
    code: i32,
    msg: &'static str,
    after: fn(&Fx, &Output),
}

fn run_table(rows: &[Row]) {
    let mut failures = vec![];
    for row in rows {
        let fx = Fx::new();
        let mut args: Vec<&str> = row.args.to_vec();
        let sub = args.iter().position(|a| *a == "luks").map(|i| args[i + 1]);
        let fast = matches!(sub, Some("format" | "add-key" | "change-key"));
        if fast && !args.contains(&"--pbkdf") {
            args.extend(FAST);
        }
        let out = fx.run(&args, row.stdin);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        let text = format!("{err}{}", String::from_utf8_lossy(&out.stdout));
        if out.status.code() != Some(row.code) || !text.contains(row.msg) {
            failures.push(format!(
                "{}: exit {:?} (want {}), output {text:?} (want {:?})",
                row.name,
                out.status.code(),
                row.code,
                row.msg
            ));
            continue;
        }
        (row.after)(&fx, &out);
        eprintln!("ok: {}", row.name);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn nothing(_: &Fx, _: &Output) {}

fn only_k1(fx: &Fx, _: &Output) {
    assert_eq!(fx.slots("v.img"), vec![0]);
    assert!(fx.opens("v.img", "k1"));
    assert!(fx.unchanged(), "volume bytes changed");
}

#[test]
fn passphrase_input_as_cryptsetup() {
    if !common::tool("cryptsetup") {
        return;
    }
    run_table(&[
        Row {
            name: "two key inputs on stdin",
            args: &[
                "luks",
                "add-key",
                "@v.img",
                "--key-file",
                "-",
                "--new-key-file",
                "-",
            ],
            stdin: Some(K1),
            code: 1,
            msg: "only one passphrase can come from standard input",
            after: only_k1,
        },
        Row {
            name: "key file on stdin and new passphrase prompted from stdin",
            args: &["luks", "add-key", "@v.img", "-d", "-"],
            stdin: Some(K1),
            code: 1,
            msg: "only one passphrase can come from standard input",
            after: only_k1,
        },
        Row {
            name: "closed stdin is no new passphrase",
            args: &["luks", "add-key", "@v.img", "-d", "@k1"],
            stdin: None,
            code: 1,
            msg: "empty passphrase is refused",
            after: only_k1,
        },
        Row {
            name: "empty stdin is no new passphrase",
            args: &[
                "luks",
                "add-key",
                "@v.img",
                "-d",
                "@k1",
                "--new-key-file",
                "-",
            ],
            stdin: Some(b""),
            code: 1,
            msg: "nothing to read from --new-key-file -",
            after: only_k1,
        },
        Row {
            name: "change-key to an empty key file",
            args: &[
                "luks",
                "change-key",
                "@v.img",
                "-d",
                "@k1",
                "--new-key-file",
                "@empty",
            ],
            stdin: None,
            code: 1,
            msg: "nothing to read from --new-key-file",
            after: only_k1,
        },
        Row {
            name: "format with closed stdin as key file",
            args: &["luks", "format", "@plain.img", "--key-file", "-"],
            stdin: None,
            code: 1,
            msg: "nothing to read from --key-file -",
            after: |fx, _| assert!(fx.read("plain.img").iter().all(|b| *b == 0)),
        },
        Row {
            name: "format reads one line of a piped stdin, newline stripped",
            args: &["luks", "format", "@plain.img"],
            stdin: Some(b"first passphrase\nignored\n"),
            code: 0,
            msg: "formatted",
            after: |fx, _| assert!(fx.opens("plain.img", "k1")),
        },
        Row {
            name: "key file over 8 MiB refused while reading",
            args: &[
                "luks",
                "add-key",
                "@v.img",
                "-d",
                "@k1",
                "--new-key-file",
                "@big9m",
            ],
            stdin: None,
            code: 1,
            msg: "larger than the maximum key-file size of 8388608 bytes",
            after: only_k1,
        },
        Row {
            name: "/dev/zero as key file",
            args: &["luks", "test-passphrase", "@v.img", "-d", "/dev/zero"],
            stdin: None,
            code: 1,
            msg: "larger than the maximum key-file size",
            after: only_k1,
        },
        Row {
            name: "--new-keyfile-size and --new-keyfile-offset",
            args: &[
                "luks",
                "add-key",
                "@v.img",
                "-d",
                "@k1",
                "--new-key-file",
                "@k2long",
                "--new-keyfile-size",
                "5",
                "--new-keyfile-offset",
                "2",
            ],
            stdin: None,
            code: 0,
            msg: "added keyslot 1",
            after: |fx, _| {
                assert_eq!(fx.slots("v.img"), vec![0, 1]);
                assert!(fx.opens("v.img", "k2part"));
                assert!(!fx.opens("v.img", "k2long"));
            },
        },
        Row {
            name: "--keyfile-size 0",
            args: &[
                "luks",
                "test-passphrase",
                "@v.img",
                "-d",
                "@k1",
                "--keyfile-size",
                "0",
            ],
            stdin: None,
            code: 1,
            msg: "--keyfile-size 0: allowed 1..=8388608 bytes",
            after: only_k1,
        },
        Row {
            name: "--keyfile-size longer than the file",
            args: &[
                "luks",
                "test-passphrase",
                "@v.img",
                "-d",
                "@k1",
                "-l",
                "100",
            ],
            stdin: None,
            code: 1,
            msg: "fewer than --keyfile-size 100",
            after: only_k1,
        },
        Row {
            name: "--keyfile-offset past the end",
            args: &[
                "luks",
                "test-passphrase",
                "@v.img",
                "-d",
                "@k1",
                "--keyfile-offset",
                "99",
            ],
            stdin: None,
            code: 1,
            msg: "--keyfile-offset 99 is past its end (16 bytes)",
            after: only_k1,
        },
        Row {
            name: "--keyfile-size picks a prefix",
            args: &["luks", "test-passphrase", "@v.img", "-d", "@k1", "-l", "5"],
            stdin: None,
            code: 2,
            msg: "no keyslot matches",
            after: only_k1,
        },
        Row {
            name: "secret store of /dev/zero capped while reading",
            args: &["secret", "store", "--kind", "opaque", "--file", "/dev/zero"],
            stdin: None,
            code: 1,
            msg: "more than 1048576 bytes",
            after: nothing,
        },
        Row {
            name: "secret store of an endless stdin capped while reading",
            args: &["secret", "store", "--kind", "opaque"],
            stdin: Some(&[7u8; 2 << 20]),
            code: 1,
            msg: "more than 1048576 bytes",
            after: nothing,
        },
    ]);
}

#[test]
fn outputs_never_hurt() {
    if !common::tool("cryptsetup") {
        return;
    }
    run_table(&[
        Row {
            name: "existing output needs --force",
            args: &["luks", "read", "@v.img", "-d", "@k1", "--output", "@exists"],
            stdin: None,
            code: 1,
            msg: "already exists; give --force",
            after: |fx, _| assert_eq!(fx.read("exists"), b"keep me"),
        },
        Row {
            name: "--force replaces a regular file, mode 0600",
            args: &[
                "luks", "read", "@v.img", "-d", "@k1", "-o", "@exists", "--force",
            ],
            stdin: None,
            code: 0,
            msg: "",
            after: |fx, _| {
                assert_eq!(fx.read("exists").len() as u64, fx.data_size);
                assert_eq!(fx.mode("exists"), 0o600);
                assert!(fx.unchanged());
            },
        },
        Row {
            name: "new output created 0600",
            args: &[
                "luks", "read", "@v.img", "-d", "@k1", "-o", "@new", "--length", "10",
            ],
            stdin: None,
            code: 0,
            msg: "",
            after: |fx, _| {
                assert_eq!(fx.read("new").len(), 10);
                assert_eq!(fx.mode("new"), 0o600);
            },
        },
        Row {
            name: "symlink output not followed",
            args: &[
                "luks", "read", "@v.img", "-d", "@k1", "-o", "@link", "--force",
            ],
            stdin: None,
            code: 1,
            msg: "is a symbolic link",
            after: |fx, _| {
                assert_eq!(fx.read("exists"), b"keep me");
                assert_eq!(std::fs::read_link(fx.p("link")).unwrap(), fx.p("exists"));
            },
        },
        Row {
            name: "secret get to a symlink",
            args: &["secret", "get", "@ID", "-o", "@link"],
            stdin: None,
            code: 1,
            msg: "is a symbolic link",
            after: |fx, _| {
                assert_eq!(fx.read("exists"), b"keep me");
                assert_eq!(std::fs::read_link(fx.p("link")).unwrap(), fx.p("exists"));
            },
        },
        Row {
            name: "secret get over an existing file",
            args: &["secret", "get", "@ID", "-o", "@exists"],
            stdin: None,
            code: 1,
            msg: "already exists",
            after: |fx, _| assert_eq!(fx.read("exists"), b"keep me"),
        },
        Row {
            name: "secret get --force",
            args: &["secret", "get", "@ID", "-o", "@exists", "--force"],
            stdin: None,
            code: 0,
            msg: "",
            after: |fx, _| {
                assert_eq!(fx.read("exists"), K1);
                assert_eq!(fx.mode("exists"), 0o600);
            },
        },
        Row {
            name: "output is the volume",
            args: &[
                "luks", "read", "@v.img", "-d", "@k1", "-o", "@v.img", "--force",
            ],
            stdin: None,
            code: 1,
            msg: "is the volume itself",
            after: only_k1,
        },
        Row {
            name: "output is a hard link of the volume",
            args: &[
                "luks",
                "read",
                "@v.img",
                "-d",
                "@k1",
                "-o",
                "@v-hardlink",
                "--force",
            ],
            stdin: None,
            code: 1,
            msg: "is the volume itself",
            after: only_k1,
        },
        Row {
            name: "header backup to the volume",
            args: &[
                "luks",
                "header-backup",
                "@v.img",
                "--file",
                "@v.img",
                "--force",
            ],
            stdin: None,
            code: 1,
            msg: "is the volume itself",
            after: only_k1,
        },
        Row {
            name: "header backup over an existing file",
            args: &["luks", "header-backup", "@v.img", "--file", "@exists"],
            stdin: None,
            code: 1,
            msg: "already exists",
            after: |fx, _| assert_eq!(fx.read("exists"), b"keep me"),
        },
        Row {
            name: "header backup --force",
            args: &[
                "luks",
                "header-backup",
                "@v.img",
                "--file",
                "@exists",
                "--force",
            ],
            stdin: None,
            code: 0,
            msg: "",
            after: |fx, _| {
                assert_eq!(fx.mode("exists"), 0o600);
                assert!(cryptsetup(&["isLuks", fx.s("exists")]).status.success());
            },
        },
        Row {
            name: "/dev/stdout that is a pipe",
            args: &[
                "luks",
                "read",
                "@v.img",
                "-d",
                "@k1",
                "-o",
                "/dev/stdout",
                "--length",
                "16",
            ],
            stdin: None,
            code: 0,
            msg: "",
            after: |_, out| assert_eq!(out.stdout.len(), 16),
        },
        Row {
            name: "write of an unknown-length input stops at the segment end",
            args: &[
                "luks", "write", "@v.img", "-d", "@k1", "--input", "-", "--offset", "@END-100",
            ],
            stdin: Some(&[0x42; 1000]),
            code: 1,
            msg: "wrote 100 bytes",
            after: |fx, _| {
                let out = fx.run(
                    &[
                        "luks", "read", "@v.img", "-d", "@k1", "-o", "-", "--offset", "@END-100",
                    ],
                    None,
                );
                assert_eq!(out.stdout, vec![0x42; 100]);
            },
        },
        Row {
            name: "write of a too-long file refused before the unlock",
            args: &[
                "luks", "write", "@v.img", "-d", "@k1", "--input", "@data", "--offset", "@END-100",
            ],
            stdin: None,
            code: 1,
            msg: "holds 1000 bytes",
            after: only_k1,
        },
    ]);
}

/// `--output` to a character device node made with mknod in the temp
/// folder: written with --force, never re-moded.
#[test]
fn device_node_output_is_never_remoded() {
    if !common::tool("cryptsetup") {
        return;
    }
    let fx = Fx::new();
    let node = fx.p("null");
    let made = Command::new("mknod")
        .arg(&node)
        .args(["c", "1", "3"])
        .status()
        .is_ok_and(|s| s.success());
    if !made {
        eprintln!("skipped: mknod needs root (CAP_MKNOD)");
        return;
    }
    std::fs::set_permissions(&node, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = fx.run(
        &["luks", "read", "@v.img", "-d", "@k1", "-o", "@null"],
        None,
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let out = fx.run(
        &[
            "luks", "read", "@v.img", "-d", "@k1", "-o", "@null", "--force",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let m = std::fs::symlink_metadata(&node).unwrap();
    assert_eq!(m.permissions().mode() & 0o7777, 0o666, "node re-moded");
    assert_eq!(m.rdev(), std::fs::metadata("/dev/null").unwrap().rdev());
    let out = fx.run(&["secret", "get", "@ID", "-o", "@null", "--force"], None);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(fx.mode("null"), 0o666);
}

fn slots_none(fx: &Fx, _: &Output) {
    assert!(fx.slots("v.img").is_empty());
}

#[test]
fn exit_codes_as_cryptsetup() {
    if !common::tool("cryptsetup") {
        return;
    }
    run_table(&[
        Row {
            name: "dump: missing device",
            args: &["luks", "dump", "@missing.img"],
            stdin: None,
            code: 4,
            msg: "does not exist",
            after: nothing,
        },
        Row {
            name: "dump: not LUKS",
            args: &["luks", "dump", "@plain.img"],
            stdin: None,
            code: 1,
            msg: "not a LUKS device",
            after: nothing,
        },
        Row {
            name: "format: missing device",
            args: &["luks", "format", "@missing.img", "-d", "@k1"],
            stdin: None,
            code: 4,
            msg: "does not exist",
            after: nothing,
        },
        Row {
            name: "test-passphrase: wrong passphrase",
            args: &["luks", "test-passphrase", "@v.img", "-d", "@k2"],
            stdin: None,
            code: 2,
            msg: "no keyslot matches",
            after: only_k1,
        },
        Row {
            name: "test-passphrase: missing device",
            args: &["luks", "test-passphrase", "@missing.img", "-d", "@k1"],
            stdin: None,
            code: 4,
            msg: "does not exist",
            after: nothing,
        },
        Row {
            name: "add-key: wrong passphrase",
            args: &[
                "luks",
                "add-key",
                "@v.img",
                "-d",
                "@k2",
                "--new-key-file",
                "@k2",
            ],
            stdin: None,
            code: 2,
            msg: "no keyslot matches",
            after: only_k1,
        },
        Row {
            name: "add-key: missing device",
            args: &[
                "luks",
                "add-key",
                "@missing.img",
                "-d",
                "@k1",
                "--new-key-file",
                "@k2",
            ],
            stdin: None,
            code: 4,
            msg: "does not exist",
            after: nothing,
        },
        Row {
            name: "add-key: --key-slot 32",
            args: &[
                "luks",
                "add-key",
                "@v.img",
                "-d",
                "@k1",
                "--new-key-file",
                "@k2",
                "-S",
                "32",
            ],
            stdin: None,
            code: 1,
            msg: "--key-slot 32 is outside the allowed 0..=31",
            after: only_k1,
        },
        Row {
            name: "change-key: wrong passphrase",
            args: &[
                "luks",
                "change-key",
                "@v.img",
                "-d",
                "@k2",
                "--new-key-file",
                "@k2",
            ],
            stdin: None,
            code: 2,
            msg: "no keyslot matches",
            after: only_k1,
        },
        Row {
            name: "change-key: to K2",
            args: &[
                "luks",
                "change-key",
                "@v.img",
                "-d",
                "@k1",
                "--new-key-file",
                "@k2",
            ],
            stdin: None,
            code: 0,
            msg: "passphrase changed",
            after: |fx, _| {
                assert!(fx.opens("v.img", "k2"));
                assert!(!fx.opens("v.img", "k1"));
                assert_eq!(fx.slots("v.img").len(), 1);
            },
        },
        Row {
            name: "remove-key: wrong passphrase",
            args: &["luks", "remove-key", "@v.img", "-d", "@k2"],
            stdin: None,
            code: 2,
            msg: "no keyslot matches",
            after: only_k1,
        },
        Row {
            name: "kill-slot: inactive slot",
            args: &["luks", "kill-slot", "@v.img", "5", "-q"],
            stdin: None,
            code: 1,
            msg: "Keyslot 5 is not active",
            after: only_k1,
        },
        Row {
            name: "kill-slot: missing device",
            args: &["luks", "kill-slot", "@missing.img", "0", "-q"],
            stdin: None,
            code: 4,
            msg: "does not exist",
            after: nothing,
        },
        Row {
            name: "read: wrong passphrase, no output left",
            args: &["luks", "read", "@v.img", "-d", "@k2", "-o", "@out"],
            stdin: None,
            code: 2,
            msg: "no keyslot matches",
            after: |fx, _| {
                assert!(!fx.p("out").exists());
                let temps = std::fs::read_dir(fx.dir.path())
                    .unwrap()
                    .filter(|e| {
                        let name = e.as_ref().unwrap().file_name();
                        name.to_string_lossy().contains(".keymgr-")
                    })
                    .count();
                assert_eq!(temps, 0, "a temporary output was left behind");
            },
        },
        Row {
            name: "read: --offset past the end, before the unlock",
            args: &[
                "luks",
                "read",
                "@v.img",
                "-d",
                "@k1",
                "-o",
                "@out",
                "--offset",
                "999999999999",
            ],
            stdin: None,
            code: 1,
            msg: "--offset 999999999999 is past the end",
            after: |fx, _| assert!(!fx.p("out").exists()),
        },
        Row {
            name: "read: missing --output is wrong parameters",
            args: &["luks", "read", "@v.img", "-d", "@k1"],
            stdin: None,
            code: 1,
            msg: "--output",
            after: nothing,
        },
        Row {
            name: "write: wrong passphrase",
            args: &["luks", "write", "@v.img", "-d", "@k2", "--input", "@data"],
            stdin: None,
            code: 2,
            msg: "no keyslot matches",
            after: only_k1,
        },
        Row {
            name: "write: missing input, before the unlock",
            args: &[
                "luks",
                "write",
                "@v.img",
                "-d",
                "@k1",
                "--input",
                "@nothing-here",
            ],
            stdin: None,
            code: 1,
            msg: "--input",
            after: only_k1,
        },
        Row {
            name: "test-passphrase: missing key file is wrong parameters",
            args: &["luks", "test-passphrase", "@v.img", "-d", "@no-such-key"],
            stdin: None,
            code: 1,
            msg: "--key-file",
            after: only_k1,
        },
        Row {
            name: "header-restore: missing backup file is wrong parameters",
            args: &["luks", "header-restore", "@v.img", "--file", "@no-such.bak"],
            stdin: None,
            code: 1,
            msg: "--file",
            after: only_k1,
        },
        Row {
            name: "header-backup: missing device",
            args: &["luks", "header-backup", "@missing.img", "--file", "@hb"],
            stdin: None,
            code: 4,
            msg: "does not exist",
            after: |fx, _| assert!(!fx.p("hb").exists()),
        },
        Row {
            name: "header-restore: missing device",
            args: &[
                "luks",
                "header-restore",
                "@missing.img",
                "--file",
                "@same.bak",
            ],
            stdin: None,
            code: 4,
            msg: "does not exist",
            after: nothing,
        },
        Row {
            name: "format: --sector-size 1000 before any benchmark",
            args: &[
                "luks",
                "format",
                "@plain.img",
                "-d",
                "@k1",
                "--sector-size",
                "1000",
            ],
            stdin: None,
            code: 1,
            msg: "--sector-size: 1000 is not one of 512, 1024, 2048, 4096 bytes",
            after: |fx, _| assert!(fx.read("plain.img").iter().all(|b| *b == 0)),
        },
        Row {
            name: "format: bad --uuid",
            args: &[
                "luks",
                "format",
                "@plain.img",
                "-d",
                "@k1",
                "--uuid",
                "nope",
            ],
            stdin: None,
            code: 1,
            msg: "--uuid",
            after: nothing,
        },
        Row {
            name: "format: --pbkdf-parallel 0",
            args: &[
                "luks",
                "format",
                "@plain.img",
                "-d",
                "@k1",
                "--pbkdf",
                "argon2id",
                "--pbkdf-parallel",
                "0",
            ],
            stdin: None,
            code: 1,
            msg: "--pbkdf-parallel: 0 is outside the allowed 1..=4 threads",
            after: nothing,
        },
        Row {
            name: "format: --pbkdf-memory 0",
            args: &[
                "luks",
                "format",
                "@plain.img",
                "-d",
                "@k1",
                "--pbkdf",
                "argon2id",
                "--pbkdf-memory",
                "0",
            ],
            stdin: None,
            code: 1,
            msg: "--pbkdf-memory: 0 is outside the allowed 32..=4194304 KiB",
            after: nothing,
        },
        Row {
            name: "format: LUKS2 --offset 100 names --offset",
            args: &[
                "luks",
                "format",
                "@plain.img",
                "-d",
                "@k1",
                "--offset",
                "100",
            ],
            stdin: None,
            code: 1,
            msg: "--offset: 100 sectors leaves no room",
            after: |fx, _| assert!(fx.read("plain.img").iter().all(|b| *b == 0)),
        },
        Row {
            name: "--json error",
            args: &["--json", "luks", "test-passphrase", "@v.img", "-d", "@k2"],
            stdin: None,
            code: 2,
            msg: "{\"error\":{\"kind\":\"permission\"",
            after: nothing,
        },
        Row {
            name: "list --limit 0",
            args: &["secret", "list", "--limit", "0"],
            stdin: None,
            code: 1,
            msg: "--limit 0",
            after: nothing,
        },
        Row {
            name: "--bits disagreeing with the payload",
            args: &[
                "secret",
                "store",
                "--kind",
                "symmetric",
                "--file",
                "@k1",
                "--bit-length",
                "256",
            ],
            stdin: None,
            code: 1,
            msg: "--bits 256 disagrees with the payload",
            after: nothing,
        },
    ]);
}

#[test]
fn confirmation_as_cryptsetup() {
    if !common::tool("cryptsetup") {
        return;
    }
    run_table(&[
        Row {
            name: "format over LUKS refused without a terminal",
            args: &["luks", "format", "@v.img", "-d", "@k2"],
            stdin: None,
            code: 1,
            msg: "crypto_LUKS signature",
            after: only_k1,
        },
        Row {
            name: "format over LUKS with -q",
            args: &["luks", "format", "-q", "@v.img", "-d", "@k2"],
            stdin: None,
            code: 0,
            msg: "formatted",
            after: |fx, _| {
                assert!(fx.opens("v.img", "k2"));
                assert!(!fx.opens("v.img", "k1"));
            },
        },
        Row {
            name: "format over ext4 refused without a terminal",
            args: &["luks", "format", "@ext.img", "-d", "@k2"],
            stdin: None,
            code: 1,
            msg: "ext2/3/4 signature",
            after: |fx, _| assert!(!cryptsetup(&["isLuks", fx.s("ext.img")]).status.success()),
        },
        Row {
            name: "remove-key of the last keyslot refused without a terminal",
            args: &["luks", "remove-key", "@v.img", "-d", "@k1"],
            stdin: None,
            code: 1,
            msg: "This is the last keyslot",
            after: only_k1,
        },
        Row {
            name: "remove-key of the last keyslot with --batch-mode",
            args: &["luks", "remove-key", "@v.img", "-d", "@k1", "--batch-mode"],
            stdin: None,
            code: 0,
            msg: "removed keyslot 0",
            after: slots_none,
        },
        Row {
            name: "kill-slot of the last keyslot refused without a terminal",
            args: &["luks", "kill-slot", "@v.img", "0", "-d", "@k1"],
            stdin: None,
            code: 1,
            msg: "This is the last keyslot",
            after: only_k1,
        },
        Row {
            name: "kill-slot of the last keyslot with -q",
            args: &["luks", "kill-slot", "-q", "@v.img", "0"],
            stdin: None,
            code: 0,
            msg: "removed keyslot 0",
            after: slots_none,
        },
        Row {
            name: "header-restore of another UUID refused without a terminal",
            args: &["luks", "header-restore", "@v.img", "--file", "@other.bak"],
            stdin: None,
            code: 1,
            msg: "has UUID",
            after: only_k1,
        },
        Row {
            name: "header-restore of another UUID with -q",
            args: &[
                "luks",
                "header-restore",
                "-q",
                "@v.img",
                "--file",
                "@other.bak",
            ],
            stdin: None,
            code: 0,
            msg: "",
            after: |fx, _| assert_eq!(fx.uuid("v.img"), fx.uuid("other.img")),
        },
        Row {
            name: "header-restore onto a device without a LUKS header refused without a terminal",
            args: &[
                "luks",
                "header-restore",
                "@plain.img",
                "--file",
                "@same.bak",
            ],
            stdin: None,
            code: 1,
            msg: "does not contain a LUKS header",
            after: |fx, _| assert!(fx.read("plain.img").iter().all(|b| *b == 0)),
        },
        Row {
            name: "format over swap made by mkswap refused without a terminal",
            args: &["luks", "format", "@swap.img", "-d", "@k1"],
            stdin: None,
            code: 1,
            msg: "swap signature",
            after: |fx, _| assert!(!cryptsetup(&["isLuks", fx.s("swap.img")]).status.success()),
        },
        Row {
            name: "header-restore of the same UUID needs no confirmation",
            args: &["luks", "header-restore", "@v.img", "--file", "@same.bak"],
            stdin: None,
            code: 0,
            msg: "",
            after: only_k1,
        },
    ]);
}

/// Runs keymgr and polls its peak resident memory (VmHWM, KiB) until it exits.
fn max_rss_kib(fx: &Fx, args: &[&str]) -> (Output, u64) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_keymgr"))
        .arg("--config")
        .arg(&fx.config)
        .args(args.iter().map(|a| fx.arg(a)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak = 0u64;
    loop {
        if let Ok(s) = std::fs::read_to_string(&status_path) {
            if let Some(v) = s
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
            {
                peak = peak.max(v);
            }
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    (child.wait_with_output().unwrap(), peak)
}

#[test]
fn memory_stays_bounded_with_endless_inputs() {
    if !common::tool("cryptsetup") {
        return;
    }
    let fx = Fx::new();
    for args in [
        &["luks", "test-passphrase", "@v.img", "-d", "/dev/zero"][..],
        &[
            "luks",
            "add-key",
            "@v.img",
            "-d",
            "@k1",
            "--new-key-file",
            "/dev/zero",
        ][..],
        &["secret", "store", "--kind", "opaque", "--file", "/dev/zero"][..],
    ] {
        let start = std::time::Instant::now();
        let (out, peak) = max_rss_kib(&fx, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        assert!(peak < 64 * 1024, "{args:?}: peak RSS {peak} KiB");
        assert!(start.elapsed().as_secs() < 5, "{args:?}: too slow");
        eprintln!("{args:?}: peak RSS {peak} KiB in {:?}", start.elapsed());
    }
    assert!(only_k1_ok(&fx));
}

fn only_k1_ok(fx: &Fx) -> bool {
    fx.slots("v.img") == vec![0] && fx.unchanged()
}

/// keymgr on a pseudo-terminal: its stdin, stdout and stderr are the
/// terminal; `expect` waits for text, `send` types.
struct Pty {
    slave_name: String,
    master: std::fs::File,
    seen: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    child: std::process::Child,
}

impl Pty {
    fn spawn(fx: &Fx, args: &[&str]) -> Pty {
        use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
        let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
        grantpt(&master).unwrap();
        unlockpt(&master).unwrap();
        let name = ptsname(&master, Vec::new()).unwrap();
        let slave_name = name.to_str().unwrap().to_string();
        let slave = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&slave_name)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_keymgr"))
            .arg("--config")
            .arg(&fx.config)
            .args(args.iter().map(|a| fx.arg(a)))
            .stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave))
            .spawn()
            .unwrap();
        let master = std::fs::File::from(master);
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (mut r, s) = (master.try_clone().unwrap(), seen.clone());
        std::thread::spawn(move || {
            use std::io::Read;
            let mut buf = [0u8; 4096];
            while let Ok(n) = r.read(&mut buf) {
                if n == 0 {
                    break;
                }
                s.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Pty {
            slave_name,
            master,
            seen,
            child,
        }
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen.lock().unwrap()).into_owned()
    }
    fn expect(&self, what: &str) {
        let start = std::time::Instant::now();
        while !self.text().contains(what) {
            assert!(
                start.elapsed().as_secs() < 20,
                "waited for {what:?}; the terminal shows {:?}",
                self.text()
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
    fn send(&mut self, line: &str) {
        self.master.write_all(line.as_bytes()).unwrap();
    }
    fn finish(mut self) -> (i32, String) {
        let code = self.child.wait().unwrap().code().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(100));
        (code, self.text())
    }
}

#[test]
fn terminal_prompts_without_echo_and_confirms() {
    if !common::tool("cryptsetup") {
        return;
    }
    let fast = FAST;
    // A new passphrase: asked twice, not echoed, newline stripped.
    let fx = Fx::new();
    let mut args = vec!["luks", "format", "@plain.img"];
    args.extend(fast);
    let mut t = Pty::spawn(&fx, &args);
    t.expect("Enter passphrase for ");
    t.send("first passphrase\n");
    t.expect("Verify passphrase: ");
    t.send("first passphrase\n");
    let (code, text) = t.finish();
    assert_eq!(code, 0, "{text}");
    assert!(!text.contains("first passphrase"), "echoed: {text:?}");
    assert!(
        fx.opens("plain.img", "k1"),
        "typed passphrase differs from K1"
    );

    // Verification that differs: nothing formatted.
    let fx = Fx::new();
    let mut t = Pty::spawn(&fx, &args);
    t.expect("Enter passphrase for ");
    t.send("one\n");
    t.expect("Verify passphrase: ");
    t.send("two\n");
    let (code, text) = t.finish();
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("Passphrases do not match"), "{text}");
    assert!(fx.read("plain.img").iter().all(|b| *b == 0));

    // An existing passphrase typed on the terminal.
    let fx = Fx::new();
    let mut t = Pty::spawn(&fx, &["luks", "test-passphrase", "@v.img"]);
    t.expect("Enter passphrase for ");
    t.send("first passphrase\n");
    let (code, text) = t.finish();
    assert_eq!(code, 0, "{text}");
    assert!(!text.contains("first passphrase"), "echoed: {text:?}");

    // Interrupted at the prompt: the terminal gets its echo back.
    let fx = Fx::new();
    let t = Pty::spawn(&fx, &["luks", "test-passphrase", "@v.img"]);
    t.expect("Enter passphrase for ");
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&t.slave_name)
        .unwrap();
    let echo = |f: &std::fs::File| {
        rustix::termios::tcgetattr(f)
            .unwrap()
            .local_modes
            .contains(rustix::termios::LocalModes::ECHO)
    };
    assert!(!echo(&slave), "echo on while the passphrase is typed");
    let pid = t.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let (code, text) = t.finish();
    assert_eq!(code, 130, "{text}");
    assert!(echo(&slave), "echo left off after Ctrl-C");

    // Confirmation of a format over LUKS: only YES goes on.
    for (answer, code_wanted, k1_opens) in [("YES", 0, false), ("yes", 1, true), ("no", 1, true)] {
        let fx = Fx::new();
        let mut args = vec!["luks", "format", "@v.img", "-d", "@k2"];
        args.extend(fast);
        let mut t = Pty::spawn(&fx, &args);
        t.expect("Are you sure? (Type 'yes' in capital letters): ");
        t.send(&format!("{answer}\n"));
        let (code, text) = t.finish();
        assert_eq!(code, code_wanted, "{answer}: {text}");
        assert_eq!(fx.opens("v.img", "k1"), k1_opens, "{answer}");
        assert_eq!(fx.opens("v.img", "k2"), !k1_opens, "{answer}");
        if code_wanted == 1 {
            assert!(text.contains("Operation aborted"), "{text}");
            assert!(fx.unchanged());
        }
    }

    // Removing the last keyslot: confirmed with YES, refused with no.
    for (answer, slots) in [("no", vec![0]), ("YES", vec![])] {
        let fx = Fx::new();
        let mut t = Pty::spawn(&fx, &["luks", "remove-key", "@v.img", "-d", "@k1"]);
        t.expect("Are you sure?");
        t.send(&format!("{answer}\n"));
        let (_, text) = t.finish();
        assert_eq!(fx.slots("v.img"), slots, "{answer}: {text}");
    }

    // Header restore with another UUID: confirmed.
    let fx = Fx::new();
    let mut t = Pty::spawn(
        &fx,
        &["luks", "header-restore", "@v.img", "--file", "@other.bak"],
    );
    t.expect("Are you sure?");
    t.send("YES\n");
    let (code, text) = t.finish();
    assert_eq!(code, 0, "{text}");
    assert_eq!(fx.uuid("v.img"), fx.uuid("other.img"));

    // Secret bytes never on the terminal, whichever name it has.
    let fx = Fx::new();
    for out in ["-", "/dev/stdout", "/dev/fd/1", "/proc/self/fd/1"] {
        for args in [
            &[
                "luks", "read", "@v.img", "-d", "@k1", "--length", "16", "-o", out,
            ][..],
            &["secret", "get", "@ID", "-o", out][..],
        ] {
            let t = Pty::spawn(&fx, args);
            let (code, text) = t.finish();
            assert_eq!(code, 1, "{args:?}: {text}");
            assert!(text.contains("is a terminal"), "{args:?}: {text}");
            assert!(!text.contains("first passphrase"), "{args:?}: secret shown");
        }
    }
}

/// `luks dump` prints what `cryptsetup luksDump` prints, line for line, for
/// LUKS1 and LUKS2 volumes made by cryptsetup and by keymgr.
#[test]
fn dump_matches_cryptsetup_luksdump() {
    if !common::tool("cryptsetup") {
        return;
    }
    let fx = Fx::new();
    let cases: &[(&str, &[&str])] = &[
        (
            "luks1",
            &["--type", "luks1", "--pbkdf-force-iterations", "1000"],
        ),
        (
            "luks1-cbc",
            &[
                "--type",
                "luks1",
                "--cipher",
                "aes-cbc-essiv:sha256",
                "--key-size",
                "256",
                "--pbkdf-force-iterations",
                "1000",
            ],
        ),
        (
            "luks2-pbkdf2",
            &[
                "--type",
                "luks2",
                "--pbkdf",
                "pbkdf2",
                "--pbkdf-force-iterations",
                "1000",
            ],
        ),
        (
            "luks2-argon2id-label",
            &[
                "--type",
                "luks2",
                "--pbkdf",
                "argon2id",
                "--pbkdf-force-iterations",
                "4",
                "--pbkdf-memory",
                "32",
                "--pbkdf-parallel",
                "1",
                "--label",
                "data",
            ],
        ),
    ];
    for (name, opts) in cases {
        let img = format!("{name}.img");
        std::fs::copy(fx.p("plain.img"), fx.p(&img)).unwrap();
        let mut args = vec!["luksFormat", "-q", "--key-file", fx.s("k1")];
        args.extend(opts.iter().copied());
        args.push(fx.s(&img));
        assert!(cryptsetup(&args).status.success(), "{name}");
        // A second keyslot (priority, digest links) made by keymgr.
        let out = fx.run(
            &[
                "luks",
                "add-key",
                &format!("@{img}"),
                "-d",
                "@k1",
                "--new-key-file",
                "@k2",
                "--pbkdf",
                "pbkdf2",
                "--pbkdf-force-iterations",
                "1000",
            ],
            None,
        );
        assert!(out.status.success(), "{name}: {out:?}");
        let theirs = String::from_utf8(cryptsetup(&["luksDump", fx.s(&img)]).stdout).unwrap();
        let out = fx.run(&["luks", "dump", &format!("@{img}")], None);
        let ours = String::from_utf8(out.stdout).unwrap();
        assert_eq!(ours, theirs, "{name}");
    }
    // A LUKS2 volume made by keymgr.
    let out = fx.run(
        &[
            "luks",
            "format",
            "@plain.img",
            "-d",
            "@k1",
            "--pbkdf",
            "argon2i",
            "--pbkdf-force-iterations",
            "4",
            "--pbkdf-memory",
            "64",
            "--pbkdf-parallel",
            "2",
        ],
        None,
    );
    assert!(out.status.success(), "{out:?}");
    let theirs = String::from_utf8(cryptsetup(&["luksDump", fx.s("plain.img")]).stdout).unwrap();
    let ours = String::from_utf8(fx.run(&["luks", "dump", "@plain.img"], None).stdout).unwrap();
    assert_eq!(ours, theirs);
    assert!(ours.contains("Digests:") && ours.contains("AF stripes: 4000"));
}

#[test]
fn vocabularies() {
    if !common::tool("cryptsetup") {
        return;
    }
    run_table(&[
        Row {
            name: "openstack names: --secret-type, --bit-length, --expiration",
            args: &[
                "secret",
                "store",
                "--secret-type",
                "symmetric",
                "--file",
                "@k1",
                "--bit-length",
                "128",
                "--expiration",
                "2099-01-01T00:00:00Z",
                "--name",
                "a\x1b[31mb\x07",
            ],
            stdin: None,
            code: 0,
            msg: "",
            after: |fx, out| {
                let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
                let meta = fx.run(&["secret", "metadata", &id], None);
                let text = String::from_utf8(meta.stdout).unwrap();
                assert!(text.contains("2099-01-01"), "{text}");
                assert!(text.contains("a\\u{1b}[31mb\\u{7}"), "{text}");
                assert!(!text.contains('\x1b'), "control character printed");
                let list = fx.run(&["secret", "list"], None);
                let text = String::from_utf8(list.stdout).unwrap();
                assert!(
                    text.contains("a\\u{1b}[31mb\\u{7}") && !text.contains('\x1b'),
                    "{text}"
                );
            },
        },
        Row {
            name: "control characters in an error message are escaped",
            args: &["luks", "dump", "@no\x1b[2Jsuch"],
            stdin: None,
            code: 4,
            msg: "no\\u{1b}[2Jsuch",
            after: |_, out| assert!(!out.stderr.contains(&0x1b)),
        },
        Row {
            name: "bad --expiration",
            args: &["secret", "create", "--expiration", "tomorrow"],
            stdin: None,
            code: 1,
            msg: "RFC 3339",
            after: nothing,
        },
        Row {
            name: "cryptsetup short options -c -s -S -y -q",
            args: &[
                "luks",
                "format",
                "-q",
                "-y",
                "@plain.img",
                "-d",
                "@k1",
                "-c",
                "aes-cbc-essiv:sha256",
                "-s",
                "256",
                "-S",
                "3",
            ],
            stdin: None,
            code: 0,
            msg: "passphrase in keyslot 3",
            after: |fx, _| {
                assert_eq!(fx.slots("plain.img"), vec![3]);
                assert!(fx.opens("plain.img", "k1"));
            },
        },
        Row {
            name: "--json on a luks command",
            args: &["--json", "luks", "format", "@plain.img", "-d", "@k1"],
            stdin: None,
            code: 0,
            msg: "\"keyslot\": 0",
            after: nothing,
        },
        Row {
            name: "--json on add-key",
            args: &[
                "--json",
                "luks",
                "add-key",
                "@v.img",
                "-d",
                "@k1",
                "--new-key-file",
                "@k2",
            ],
            stdin: None,
            code: 0,
            msg: "",
            after: |fx, out| {
                let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                assert_eq!(v["keyslot"], 1);
                assert!(fx.opens("v.img", "k2"));
            },
        },
        Row {
            name: "--json on test-passphrase, write and header-backup",
            args: &["--json", "luks", "test-passphrase", "@v.img", "-d", "@k1"],
            stdin: None,
            code: 0,
            msg: "",
            after: |fx, out| {
                let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                assert_eq!(v["keyslot"], 0);
                let out = fx.run(
                    &[
                        "--json", "luks", "write", "@v.img", "-d", "@k1", "--input", "@data",
                    ],
                    None,
                );
                let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                assert_eq!(v["written"], 1000);
                let out = fx.run(
                    &["--json", "luks", "header-backup", "@v.img", "--file", "@hb"],
                    None,
                );
                let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                assert_eq!(v["uuid"].as_str().unwrap(), fx.uuid("v.img"));
            },
        },
        Row {
            name: "--json on a usage error",
            args: &["--json", "luks", "read", "@v.img"],
            stdin: None,
            code: 1,
            msg: "{\"error\":{\"kind\":\"usage\"",
            after: nothing,
        },
    ]);
}

/// Bad options are refused before any KDF benchmark (which takes seconds
/// with the default Argon2id), unlock or write, and name the option.
#[test]
fn options_fail_before_any_kdf_benchmark() {
    if !common::tool("cryptsetup") {
        return;
    }
    let fx = Fx::new();
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "luks",
                "format",
                "@plain.img",
                "-d",
                "@k1",
                "--sector-size",
                "1000",
            ],
            "--sector-size",
        ),
        (
            &["luks", "format", "@plain.img", "-d", "@k1", "-S", "32"],
            "--key-slot: 32 is outside the allowed 0..=31",
        ),
        (
            &[
                "luks",
                "format",
                "@plain.img",
                "-d",
                "@k1",
                "--type",
                "luks1",
                "-S",
                "8",
            ],
            "--key-slot: 8 is outside the allowed 0..=7",
        ),
        (
            &["luks", "format", "@plain.img", "-d", "@k1", "--uuid", "xyz"],
            "--uuid",
        ),
        (
            &[
                "luks",
                "format",
                "@plain.img",
                "-d",
                "@k1",
                "--pbkdf-parallel",
                "0",
            ],
            "--pbkdf-parallel",
        ),
        (
            &[
                "luks",
                "format",
                "@plain.img",
                "-d",
                "@k1",
                "--pbkdf-memory",
                "0",
            ],
            "--pbkdf-memory",
        ),
        (
            &["luks", "format", "@plain.img", "-d", "@k1", "-s", "100"],
            "--key-size: 100",
        ),
        (
            &["luks", "format", "@plain.img", "-d", "@missing-key"],
            "--key-file",
        ),
        (
            &[
                "luks",
                "add-key",
                "@v.img",
                "-d",
                "@k1",
                "--new-key-file",
                "@missing-key",
            ],
            "--new-key-file",
        ),
        (
            &[
                "luks",
                "add-key",
                "@v.img",
                "-d",
                "@k1",
                "--new-key-file",
                "@k2",
                "--pbkdf-memory",
                "1",
            ],
            "--pbkdf-memory",
        ),
    ];
    for (args, msg) in cases {
        let start = std::time::Instant::now();
        let out = fx.run(args, None);
        let took = start.elapsed();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(msg), "{args:?}: {err}");
        assert!(
            took < std::time::Duration::from_millis(900),
            "{args:?} took {took:?}"
        );
    }
    assert!(fx.read("plain.img").iter().all(|b| *b == 0));
    assert!(only_k1_ok(&fx));
}

/// With no configuration, the embedded store's location is told when the
/// store is created, not on every later call.
#[test]
fn embedded_store_notice_only_when_created() {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join("k"), b"abc").unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_keymgr"))
            .args(args)
            .env_remove("KEYMGR_CONFIG")
            .env_remove("KEYMGR_BACKEND")
            .env("HOME", home.path())
            .env("XDG_DATA_HOME", home.path().join("data"))
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let key = home.path().join("k");
    let first = run(&[
        "secret",
        "store",
        "--kind",
        "opaque",
        "--file",
        key.to_str().unwrap(),
    ]);
    assert!(first.status.success(), "{first:?}");
    assert!(String::from_utf8_lossy(&first.stderr).contains("using the embedded store at"));
    let second = run(&["secret", "list"]);
    assert!(second.status.success(), "{second:?}");
    assert!(
        second.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
}

/// A volume the user may not write is exit 2 (no permission), as in
/// cryptsetup; run as an unprivileged user (setpriv) when the tests run as root.
#[test]
fn no_permission_is_exit_2() {
    if !common::tool("cryptsetup") {
        return;
    }
    let fx = Fx::new();
    std::fs::set_permissions(fx.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    for f in ["v.img", "k1", "k2"] {
        std::fs::set_permissions(fx.p(f), std::fs::Permissions::from_mode(0o444)).unwrap();
    }
    let root = std::fs::metadata("/proc/self").unwrap().uid() == 0;
    let mut cmd = if root {
        if !common::tool("setpriv") {
            return;
        }
        let mut c = Command::new("setpriv");
        c.args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_keymgr"));
        c
    } else {
        Command::new(env!("CARGO_BIN_EXE_keymgr"))
    };
    let out = cmd
        .args([
            "luks",
            "add-key",
            fx.s("v.img"),
            "-d",
            fx.s("k1"),
            "--new-key-file",
            fx.s("k2"),
        ])
        .args(FAST)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("no permission to write"), "{err}");
    assert!(only_k1_ok(&fx));
}
