//! The etcd-style datadriven format every trace interpreter reads and writes:
//! [`crate::interaction`] (Raft), [`crate::group_trace`],
//! [`crate::metadata_trace`], [`crate::isr_trace`] and [`crate::assign_trace`]
//! differ only in their commands and in how they render what happened.
//!
//! A trace file is a list of stanzas separated by blank lines. A stanza is `#`
//! comment lines followed by one or more command lines, each
//! `name pos... key=value...`; a value in parentheses may hold spaces
//! (`voters=(1, 2, 3)`). A comment after a stanza's first command is dropped.
//! If a stanza still carries a `----` block (the datadriven form with inline
//! expected output), the block is skipped up to the next blank line: the
//! expected output lives in the insta snapshot.
//!
//! [`run_transcript`] runs the commands in order and writes the transcript:
//! each stanza's comments, then every command as it was written, `----` and
//! its output, commands within a stanza and stanzas apart by a blank line. The
//! same trace always prints the same bytes, so a changed snapshot is a changed
//! behaviour.

use std::collections::BTreeSet;
use std::str::FromStr;

use proto_core::raft::NodeId;

/// A trace that cannot run: a malformed or unknown command. (A refusal by the
/// code under test is not an error; interpreters print it in the transcript.)
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {msg}")]
pub struct CommandError {
    /// 1-based line in the trace file.
    pub line: usize,
    /// What is wrong.
    pub msg: String,
}

impl CommandError {
    /// An error at `line`.
    pub fn new(line: usize, msg: impl Into<String>) -> CommandError {
        CommandError {
            line,
            msg: msg.into(),
        }
    }
}

/// One command line: `name pos... key=value...`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    /// 1-based line number in the trace file, for error messages.
    pub line: usize,
    /// The line as written, echoed into the transcript.
    pub text: String,
    /// The command name.
    pub name: String,
    /// Positional arguments, in order.
    pub pos: Vec<String>,
    /// `key=value` arguments, in order.
    pub args: Vec<(String, String)>,
}

/// A group of commands with the comments written above them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stanza {
    /// Comment lines (with their `#`) before the first command.
    pub comments: Vec<String>,
    /// The commands, in order.
    pub commands: Vec<Command>,
}

/// Splits a trace file into stanzas.
pub fn parse(text: &str) -> Result<Vec<Stanza>, CommandError> {
    let mut stanzas = Vec::new();
    let mut current = Stanza::default();
    let mut in_output = false;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end();
        if line.trim().is_empty() {
            in_output = false;
            if !current.commands.is_empty() || !current.comments.is_empty() {
                stanzas.push(std::mem::take(&mut current));
            }
            continue;
        }
        if in_output {
            continue;
        }
        if line.trim() == "----" {
            in_output = true;
            continue;
        }
        if line.trim_start().starts_with('#') {
            if current.commands.is_empty() {
                current.comments.push(line.trim_start().to_string());
            }
            continue;
        }
        current.commands.push(parse_command(i + 1, line)?);
    }
    if !current.commands.is_empty() || !current.comments.is_empty() {
        stanzas.push(current);
    }
    Ok(stanzas)
}

/// Runs a trace file and returns its transcript. `run` executes one command
/// against the interpreter's environment and returns what it printed; the
/// first error (a malformed trace, or one of `run`'s) stops the trace.
pub fn run_transcript<E>(
    text: &str,
    mut run: impl FnMut(&Command) -> Result<String, E>,
) -> Result<String, E>
where
    E: From<CommandError>,
{
    let mut transcript = String::new();
    for (i, stanza) in parse(text)?.iter().enumerate() {
        if i > 0 {
            transcript.push('\n');
        }
        for c in &stanza.comments {
            transcript.push_str(c);
            transcript.push('\n');
        }
        for (j, cmd) in stanza.commands.iter().enumerate() {
            if j > 0 {
                transcript.push('\n');
            }
            let output = run(cmd)?;
            transcript.push_str(&cmd.text);
            transcript.push_str("\n----\n");
            transcript.push_str(&output);
        }
    }
    Ok(transcript)
}

/// Tokenizes on whitespace, keeping `key=(a, b)` together.
fn tokens(line: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut depth = 0i32;
    for word in line.split_whitespace() {
        if depth > 0 {
            if let Some(last) = out.last_mut() {
                last.push(' ');
                last.push_str(word);
            }
        } else {
            out.push(word.to_string());
        }
        depth += word.matches('(').count() as i32 - word.matches(')').count() as i32;
    }
    out
}

fn parse_command(line: usize, text: &str) -> Result<Command, CommandError> {
    let mut words = tokens(text).into_iter();
    let Some(name) = words.next() else {
        return Err(CommandError::new(line, "empty command"));
    };
    let mut pos = Vec::new();
    let mut args = Vec::new();
    for w in words {
        match w.split_once('=') {
            Some((k, v)) => args.push((k.to_string(), v.to_string())),
            None => pos.push(w),
        }
    }
    Ok(Command {
        line,
        text: text.trim().to_string(),
        name,
        pos,
        args,
    })
}

impl Command {
    /// An error about this command.
    pub fn error(&self, msg: impl Into<String>) -> CommandError {
        CommandError::new(self.line, msg)
    }

    /// Fails if an argument other than `known` was given: typos must not pass
    /// silently.
    pub fn only_args(&self, known: &[&str]) -> Result<(), CommandError> {
        match self.args.iter().find(|(k, _)| !known.contains(&k.as_str())) {
            Some((k, _)) => Err(self.error(format!("unknown argument {k}="))),
            None => Ok(()),
        }
    }

    /// A piece of this command (a list item, part of a value) as a `T`;
    /// `what` names a `T` for the error: `x is not a node id`.
    pub fn parse<T: FromStr>(&self, text: &str, what: &str) -> Result<T, CommandError> {
        text.parse()
            .map_err(|_| self.error(format!("{text} is not {what}")))
    }

    /// The raw value of `key=...`, if given.
    pub fn arg(&self, key: &str) -> Option<&str> {
        self.args
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The raw value of `key=...`, which must be given.
    pub fn required(&self, key: &str) -> Result<&str, CommandError> {
        self.arg(key)
            .ok_or_else(|| self.error(format!("missing {key}=")))
    }

    /// `key=V` as a `T`, or `None` if not given; `what` names a `T` for the
    /// error: `gen=x is not a generation`.
    pub fn value<T: FromStr>(&self, key: &str, what: &str) -> Result<Option<T>, CommandError> {
        self.arg(key)
            .map(|v| {
                v.parse()
                    .map_err(|_| self.error(format!("{key}={v} is not {what}")))
            })
            .transpose()
    }

    /// `key=N` as a number, or `None` if not given.
    pub fn opt_num(&self, key: &str) -> Result<Option<u64>, CommandError> {
        self.value(key, "a number")
    }

    /// `key=N` as a number, or `default`.
    pub fn num(&self, key: &str, default: u64) -> Result<u64, CommandError> {
        Ok(self.opt_num(key)?.unwrap_or(default))
    }

    /// `key=N` as a number, which must be given.
    pub fn required_num(&self, key: &str) -> Result<u64, CommandError> {
        self.required(key)?;
        self.num(key, 0)
    }

    /// `key=true|false`, or `default`.
    pub fn flag(&self, key: &str, default: bool) -> Result<bool, CommandError> {
        match self.arg(key) {
            None => Ok(default),
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(v) => Err(self.error(format!("{key}={v} is not true or false"))),
        }
    }

    /// The items of `key=(a,b,c)` (commas or spaces apart); `None` if not
    /// given. The parentheses are required.
    pub fn list(&self, key: &str) -> Result<Option<Vec<&str>>, CommandError> {
        let Some(v) = self.arg(key) else {
            return Ok(None);
        };
        let inner = v
            .strip_prefix('(')
            .and_then(|s| s.strip_suffix(')'))
            .ok_or_else(|| self.error(format!("{key}= wants a list like (1,2,3)")))?;
        let items = inner
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .collect();
        Ok(Some(items))
    }

    /// `key=(1,2,3)` as a set of node ids; `None` if not given.
    pub fn ids(&self, key: &str) -> Result<Option<BTreeSet<NodeId>>, CommandError> {
        let Some(items) = self.list(key)? else {
            return Ok(None);
        };
        items
            .into_iter()
            .map(|s| self.parse(s, "a node id").map(NodeId))
            .collect::<Result<_, _>>()
            .map(Some)
    }

    /// The positional argument at `i`, if present.
    pub fn pos_opt(&self, i: usize) -> Option<&str> {
        self.pos.get(i).map(String::as_str)
    }

    /// The positional argument at `i`, which must be present.
    pub fn pos(&self, i: usize, what: &str) -> Result<&str, CommandError> {
        self.pos_opt(i)
            .ok_or_else(|| self.error(format!("missing {what}")))
    }

    /// The positional argument at `i` as a number.
    pub fn pos_num(&self, i: usize, what: &str) -> Result<u64, CommandError> {
        let v = self.pos(i, what)?;
        v.parse()
            .map_err(|_| self.error(format!("{what} {v} is not a number")))
    }

    /// The positional argument at `i` as a node id.
    pub fn pos_id(&self, i: usize) -> Result<NodeId, CommandError> {
        self.pos_num(i, "node id").map(NodeId)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stanzas_comments_and_lists() {
        let text = "# first\nadd-nodes 3 voters=(1, 2, 3)\ncampaign 1\n\n# second\nstabilize\n----\nold output\n\n";
        let stanzas = parse(text).unwrap();
        assert_eq!(stanzas.len(), 2);
        assert_eq!(stanzas[0].comments, vec!["# first".to_string()]);
        assert_eq!(stanzas[0].commands.len(), 2);
        let add = &stanzas[0].commands[0];
        assert_eq!(add.pos, vec!["3".to_string()]);
        let voters = add.ids("voters").unwrap().unwrap();
        assert_eq!(voters.len(), 3);
        assert_eq!(stanzas[1].commands.len(), 1);
        assert_eq!(stanzas[1].commands[0].line, 6);
    }

    #[test]
    fn transcript_form() {
        let text = "# a comment\none\ntwo\n# dropped\n\n# only a comment\n\nthree x=1\n";
        let transcript = run_transcript(text, |cmd| {
            Ok::<_, CommandError>(format!("ran {}\n", cmd.name))
        })
        .unwrap();
        assert_eq!(
            transcript,
            "# a comment\none\n----\nran one\n\ntwo\n----\nran two\n\n\
             # only a comment\n\nthree x=1\n----\nran three\n"
        );
    }

    #[test]
    fn errors_name_the_line() {
        let text = "ok\n\n# why\nbad n=x\n";
        let err = run_transcript(text, |cmd| {
            cmd.num("n", 0)?;
            Ok::<_, CommandError>(String::new())
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "line 4: n=x is not a number");
    }

    #[test]
    fn typed_getters() {
        let stanzas = parse("cmd 7 x gen=-2 on=true l=(4,5) l2=4,5 t=z").unwrap();
        let cmd = &stanzas[0].commands[0];
        assert_eq!(cmd.pos_num(0, "count"), Ok(7));
        assert_eq!(
            cmd.pos_num(1, "count").unwrap_err().msg,
            "count x is not a number"
        );
        assert_eq!(cmd.pos(2, "topic").unwrap_err().msg, "missing topic");
        assert_eq!(cmd.value::<i32>("gen", "a generation"), Ok(Some(-2)));
        assert_eq!(cmd.num("gen", 0).unwrap_err().msg, "gen=-2 is not a number");
        assert_eq!(cmd.opt_num("absent"), Ok(None));
        assert_eq!(
            cmd.required_num("absent").unwrap_err().msg,
            "missing absent="
        );
        assert_eq!(cmd.flag("on", false), Ok(true));
        assert_eq!(
            cmd.flag("t", false).unwrap_err().msg,
            "t=z is not true or false"
        );
        assert_eq!(cmd.list("l"), Ok(Some(vec!["4", "5"])));
        assert_eq!(
            cmd.list("l2").unwrap_err().msg,
            "l2= wants a list like (1,2,3)"
        );
        assert_eq!(
            cmd.parse::<u64>("q", "a term").unwrap_err().msg,
            "q is not a term"
        );
        assert_eq!(
            cmd.only_args(&["gen", "on", "l", "l2"]).unwrap_err().msg,
            "unknown argument t="
        );
    }
}
