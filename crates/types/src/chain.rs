//! One line for an error and its causes.

/// `e` and every error in its `source()` chain, joined by ": ", on one line. The project's
/// errors say each part once (a variant prints its cause or returns it as its source, never
/// both), so nothing repeats.
///
/// ```
/// let io = std::io::Error::other("disk full");
/// assert_eq!(mpegcoder_types::error_chain(&io), "disk full");
/// ```
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut line = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        line.push_str(": ");
        line.push_str(&c.to_string());
        cause = c.source();
    }
    line.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt;

    #[derive(Debug)]
    struct Outer(std::io::Error);

    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("cannot write out.h264")
        }
    }

    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn joins_the_chain_on_one_line() {
        let e = Outer(std::io::Error::other("disk\nfull"));
        assert_eq!(error_chain(&e), "cannot write out.h264: disk full");
    }
}
