//! Forwarding an exec's demultiplexed output (bollard's [`LogOutput`]
//! frames) as lines, with the same splitter, limits and ordering as the
//! process executor's pipes.

use bollard::container::LogOutput;
use futures_util::{Stream, StreamExt};

use crate::port::Stream as Which;
use crate::process::MAX_LINE_BYTES;
use crate::process::lines::{Emitter, LineSplitter};

/// Reads `output` to its end (or its first error), forwarding each line as
/// it arrives; stdout and stderr are split separately.
pub(crate) async fn forward<S>(mut output: S, emitter: Emitter)
where
    S: Stream<Item = Result<LogOutput, bollard::errors::Error>> + Unpin,
{
    let mut out = LineSplitter::new(MAX_LINE_BYTES);
    let mut err = LineSplitter::new(MAX_LINE_BYTES);
    while let Some(frame) = output.next().await {
        match frame {
            Ok(LogOutput::StdOut { message } | LogOutput::Console { message }) => {
                out.push(&message, |text| emitter.emit(Which::Stdout, text))
            }
            Ok(LogOutput::StdErr { message }) => {
                err.push(&message, |text| emitter.emit(Which::Stderr, text))
            }
            Ok(LogOutput::StdIn { .. }) => {}
            // A broken stream ends the output like EOF; the step's result
            // comes from its exit code.
            Err(_) => break,
        }
    }
    out.finish(|text| emitter.emit(Which::Stdout, text));
    err.finish(|text| emitter.emit(Which::Stderr, text));
}
