//! A reader for the datadriven test file format (cockroachdb/datadriven), as etcd-io/raft's
//! scenario files use it.

/// One argument of a directive: `key`, `key=val` or `key=(v1, v2, ...)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmdArg {
    pub key: String,
    pub vals: Vec<String>,
}

/// One test case: a directive, its input and the expected output.
#[derive(Debug, Clone)]
pub struct TestData {
    /// `file:line` of the directive.
    pub pos: String,
    pub cmd: String,
    pub cmd_args: Vec<CmdArg>,
    /// The lines between the directive and `----`, joined and trimmed.
    pub input: String,
    /// The expected output, each line ending in `\n`.
    pub expected: String,
}

impl TestData {
    /// The values of argument `key`, if present.
    pub fn arg(&self, key: &str) -> Option<&[String]> {
        self.cmd_args
            .iter()
            .find(|a| a.key == key)
            .map(|a| a.vals.as_slice())
    }
}

/// Splits a directive line into its command and arguments.
pub fn parse_line(line: &str) -> Result<(String, Vec<CmdArg>), String> {
    let mut fields = Vec::new();
    let bytes = line.as_bytes();
    let mut i = 0;
    // Split on spaces, but keep `key=(a, b)` together (parens may nest).
    while i < bytes.len() {
        while i < bytes.len() && bytes[i] == b' ' {
            i += 1;
        }
        if i >= bytes.len() {
            break;
        }
        let start = i;
        let mut depth = 0i32;
        while i < bytes.len() {
            match bytes[i] {
                b'(' => depth += 1,
                b')' => depth -= 1,
                b' ' if depth <= 0 => break,
                _ => {}
            }
            i += 1;
        }
        fields.push(&line[start..i]);
    }
    let Some((cmd, rest)) = fields.split_first() else {
        return Err("empty directive".into());
    };
    let mut args = Vec::new();
    for f in rest {
        match f.find('=') {
            None => args.push(CmdArg {
                key: f.to_string(),
                vals: vec![],
            }),
            Some(eq) => {
                let key = f[..eq].to_string();
                let val = &f[eq + 1..];
                let vals = if val.starts_with('(') && val.ends_with(')') && val.len() >= 2 {
                    let inner = &val[1..val.len() - 1];
                    if inner.trim().is_empty() {
                        vec![]
                    } else {
                        inner.split(',').map(|s| s.trim().to_string()).collect()
                    }
                } else {
                    vec![val.to_string()]
                };
                args.push(CmdArg { key, vals });
            }
        }
    }
    Ok((cmd.to_string(), args))
}

/// Parses a whole file into its cases.
pub fn parse_file(name: &str, text: &str) -> Result<Vec<TestData>, String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            i += 1;
            continue;
        }
        let pos = format!("{name}:{}", i + 1);
        let (cmd, cmd_args) = parse_line(trimmed).map_err(|e| format!("{pos}: {e}"))?;
        i += 1;
        let mut input = Vec::new();
        while i < lines.len() && lines[i] != "----" {
            input.push(lines[i]);
            i += 1;
        }
        if i >= lines.len() {
            return Err(format!("{pos}: directive without ----"));
        }
        i += 1; // "----"
        let mut expected = String::new();
        if i < lines.len() && lines[i] == "----" {
            // The blank-line form: ----\n----\n<output>\n----\n----
            i += 1;
            while i + 1 < lines.len() && !(lines[i] == "----" && lines[i + 1] == "----") {
                expected.push_str(lines[i]);
                expected.push('\n');
                i += 1;
            }
            i += 2;
        } else {
            while i < lines.len() && !lines[i].trim().is_empty() {
                expected.push_str(lines[i]);
                expected.push('\n');
                i += 1;
            }
        }
        out.push(TestData {
            pos,
            cmd,
            cmd_args,
            input: input.join("\n").trim().to_string(),
            expected,
        });
    }
    Ok(out)
}
