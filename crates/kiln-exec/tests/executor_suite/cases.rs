//! The cases: each runs on both executors (see `main.rs`).

use super::{Kind, both, outputs};
use kiln_exec::port::Stream;
use kiln_model::{JobStatus, StepStatus};

#[tokio::test]
async fn exit_codes_and_continue_on_error() {
    both(
        "    steps:
      - run: exit 3
        continue-on-error: true
      - run: echo still running
      - run: exit 7
      - run: echo not reached
",
        |ran| {
            assert_eq!(ran.outcome.status, JobStatus::Failure, "{:?}", ran.kind);
            assert_eq!(ran.step(1).exit_code, Some(3), "{:?}", ran.kind);
            assert_eq!(ran.step(1).status, StepStatus::Success);
            assert_eq!(ran.out(2), ["still running"]);
            assert_eq!(ran.step(3).exit_code, Some(7));
            assert_eq!(ran.step(4).status, StepStatus::Skipped);
        },
    )
    .await;
}

#[tokio::test]
async fn the_default_shell_stops_at_the_first_failing_command() {
    both(
        "    steps:
      - run: |
          echo before
          false
          echo after
      - run: no-such-command-kiln
",
        |ran| {
            assert_eq!(ran.out(1), ["before"], "{:?}", ran.kind);
            assert_eq!(ran.step(1).exit_code, Some(1));
            // A missing command is the shell's 127 in both.
            assert_eq!(ran.step(2).status, StepStatus::Skipped);
        },
    )
    .await;
    both(
        "    steps:
      - run: no-such-command-kiln
",
        |ran| assert_eq!(ran.step(1).exit_code, Some(127), "{:?}", ran.kind),
    )
    .await;
}

#[tokio::test]
async fn env_from_workflow_job_step_and_kiln_env_files() {
    both(
        "    env:
      JOB_VAR: job
    steps:
      - run: echo \"ADDED=from step 1\" >> \"$KILN_ENV\"
      - env:
          STEP_VAR: step
        run: |
          echo \"$JOB_VAR $STEP_VAR $ADDED\"
          echo \"$CI $KILN $KILN_SHA\"
          test \"$KILN_WORKSPACE\" = \"$PWD\" && echo in-workspace
",
        |ran| {
            assert_eq!(
                ran.outcome.status,
                JobStatus::Success,
                "{:?} {:?}",
                ran.kind,
                ran.lines
            );
            assert_eq!(
                ran.out(2),
                ["job step from step 1", "true true abc123", "in-workspace"],
                "{:?}",
                ran.kind
            );
        },
    )
    .await;
}

#[tokio::test]
async fn outputs_pass_between_steps_and_to_the_job() {
    both(
        "    outputs:
      answer: ${{ steps.first.outputs.answer }}
    steps:
      - id: first
        run: |
          echo \"answer=42\" >> \"$KILN_OUTPUT\"
          echo \"multi<<EOF\" >> \"$KILN_OUTPUT\"
          echo \"line one\" >> \"$KILN_OUTPUT\"
          echo \"EOF\" >> \"$KILN_OUTPUT\"
      - run: |
          echo \"${{ steps.first.outputs.answer }}\"
          echo \"${{ steps.first.outputs.multi }}\"
",
        |ran| {
            assert_eq!(
                ran.outcome.status,
                JobStatus::Success,
                "{:?} {:?}",
                ran.kind,
                ran.lines
            );
            assert_eq!(ran.out(2), ["42", "line one"], "{:?}", ran.kind);
            assert_eq!(outputs(ran).get("answer").map(String::as_str), Some("42"));
        },
    )
    .await;
}

#[tokio::test]
async fn kiln_path_adds_to_path_for_later_steps() {
    both(
        "    steps:
      - run: |
          mkdir -p tools
          printf '#!/bin/sh\\necho tool ran\\n' > tools/mytool
          chmod +x tools/mytool
          echo \"$PWD/tools\" >> \"$KILN_PATH\"
      - run: mytool
",
        |ran| {
            assert_eq!(
                ran.outcome.status,
                JobStatus::Success,
                "{:?} {:?}",
                ran.kind,
                ran.lines
            );
            assert_eq!(ran.out(2), ["tool ran"], "{:?}", ran.kind);
        },
    )
    .await;
}

#[tokio::test]
async fn working_directory_and_files_are_shared_with_the_host() {
    both(
        "    steps:
      - run: mkdir -p sub/dir && echo hello > sub/dir/file
      - working-directory: sub/dir
        run: |
          cat file
          basename \"$PWD\"
      - working-directory: missing
        run: echo never
",
        |ran| {
            assert_eq!(
                ran.out(2),
                ["hello", "dir"],
                "{:?} {:?}",
                ran.kind,
                ran.lines
            );
            assert!(ran.workspace.join("sub/dir/file").exists());
            assert_eq!(ran.step(3).status, StepStatus::Failure, "{:?}", ran.kind);
            let reason = ran.step(3).reason.clone().unwrap_or_default();
            assert!(
                reason.contains("does not exist"),
                "{:?}: {reason}",
                ran.kind
            );
        },
    )
    .await;
}

#[tokio::test]
async fn stdout_and_stderr_are_told_apart() {
    both(
        "    steps:
      - shell: sh
        run: |
          echo out
          echo err >&2
      - run: test -e /www/index.html && echo in-image || echo on-host
",
        |ran| {
            // The suite really runs where it says.
            let place = match ran.kind {
                Kind::Process => "on-host",
                Kind::Container => "in-image",
            };
            assert_eq!(ran.out(2), [place]);
            assert_eq!(ran.stream(1, Stream::Stdout), ["out"], "{:?}", ran.kind);
            assert_eq!(ran.stream(1, Stream::Stderr), ["err"], "{:?}", ran.kind);
        },
    )
    .await;
}

#[tokio::test]
async fn a_step_timeout_fails_the_step_and_always_steps_still_run() {
    both(
        "    steps:
      - timeout-minutes: 0.01
        run: sleep 30
      - if: always()
        run: echo cleanup
",
        |ran| {
            assert_eq!(ran.step(1).status, StepStatus::Failure, "{:?}", ran.kind);
            let reason = ran.step(1).reason.clone().unwrap_or_default();
            assert!(reason.contains("timed out"), "{:?}: {reason}", ran.kind);
            assert_eq!(ran.out(2), ["cleanup"], "{:?} {:?}", ran.kind, ran.lines);
            if ran.kind == Kind::Container {
                assert!(ran.step(1).duration_ms < 10_000);
            }
        },
    )
    .await;
}
