//! `kiln doctor` against the real engine that `scripts/test.sh` starts
//! (`DOCKER_HOST`) and against engines that are not there.

use std::process::Command;

const KILN: &str = env!("CARGO_BIN_EXE_kiln");

fn image() -> String {
    std::env::var("KILN_TEST_IMAGE").unwrap_or_else(|_| "localhost/kiln-busybox:latest".into())
}

#[test]
fn doctor_names_the_engine_and_runs_a_container() {
    let host = std::env::var("DOCKER_HOST")
        .expect("DOCKER_HOST must name the test engine (scripts/test.sh starts Podman)");
    let out = Command::new(KILN)
        .args(["doctor", "--image", &image()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains(&format!("at {host} (from DOCKER_HOST)")),
        "{stdout}"
    );
    assert!(stdout.contains("container  ok"), "{stdout}");
}

#[test]
fn doctor_gives_a_fix_for_a_missing_engine_and_a_missing_image() {
    let out = Command::new(KILN)
        .args(["doctor"])
        .env("DOCKER_HOST", "unix:///nonexistent/kiln.sock")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("engine     FAIL"), "{stdout}");
    assert!(
        stdout.contains("fix:  DOCKER_HOST=unix:///nonexistent/kiln.sock"),
        "{stdout}"
    );

    let out = Command::new(KILN)
        .args(["doctor", "--image", "localhost/kiln-no-such-image:1"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("container  FAIL"), "{stdout}");
    assert!(
        stdout.contains("localhost/kiln-no-such-image:1"),
        "{stdout}"
    );
    assert!(stdout.contains("pass it with --image"), "{stdout}");
}
