//! Reading trace files: stanzas of commands, `#` comments, blank-line separated.
//!
//! A trace file holds only commands; if a stanza still carries a `----` block
//! (the datadriven form with inline expected output), that block is skipped: the
//! expected output lives in the insta snapshot.

use std::collections::BTreeSet;

use proto_core::raft::NodeId;

use super::CommandError;

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

    /// The raw value of `key=...`, if given.
    pub fn arg(&self, key: &str) -> Option<&str> {
        self.args
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Fails if an argument other than `known` was given: typos must not pass
    /// silently.
    pub fn only_args(&self, known: &[&str]) -> Result<(), CommandError> {
        match self.args.iter().find(|(k, _)| !known.contains(&k.as_str())) {
            Some((k, _)) => Err(self.error(format!("unknown argument {k}="))),
            None => Ok(()),
        }
    }

    /// `key=N` as a number, or `default`.
    pub fn num(&self, key: &str, default: u64) -> Result<u64, CommandError> {
        match self.arg(key) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| self.error(format!("{key}={v} is not a number"))),
        }
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

    /// `key=(1,2,3)` as a set of node ids; `None` if not given.
    pub fn ids(&self, key: &str) -> Result<Option<BTreeSet<NodeId>>, CommandError> {
        let Some(v) = self.arg(key) else {
            return Ok(None);
        };
        let inner = v
            .strip_prefix('(')
            .and_then(|s| s.strip_suffix(')'))
            .ok_or_else(|| self.error(format!("{key}= wants a list like (1,2,3)")))?;
        inner
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse()
                    .map(NodeId)
                    .map_err(|_| self.error(format!("{s} is not a node id")))
            })
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
}
