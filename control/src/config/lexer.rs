//! Splits a config into lines of words with their columns, and groups
//! indented lines under the command that opens a sub-mode (`interface`,
//! `crypto map`, `ip access-list extended` ...), as IOS prints them.

/// One word and the 1-based column it starts at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word<'a> {
    pub text: &'a str,
    pub col: usize,
}

/// One non-blank, non-comment line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line<'a> {
    /// 1-based line number.
    pub no: usize,
    pub indented: bool,
    pub words: Vec<Word<'a>>,
    pub text: &'a str,
}

/// A top-level command with the indented lines under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block<'a> {
    pub head: Line<'a>,
    pub body: Vec<Line<'a>>,
}

/// Lines of `src`: `!` comments and blank lines dropped, words split on
/// whitespace.
pub fn lines(src: &str) -> Vec<Line<'_>> {
    let mut out = Vec::new();
    for (i, text) in src.lines().enumerate() {
        let trimmed = text.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('!') || trimmed.starts_with('#') {
            continue;
        }
        let mut words = Vec::new();
        let mut start = None;
        for (pos, ch) in text
            .char_indices()
            .chain(std::iter::once((text.len(), ' ')))
        {
            match (ch.is_whitespace(), start) {
                (false, None) => start = Some(pos),
                (true, Some(s)) => {
                    words.push(Word {
                        text: &text[s..pos],
                        col: text[..s].chars().count() + 1,
                    });
                    start = None;
                }
                _ => {}
            }
        }
        out.push(Line {
            no: i + 1,
            indented: text.starts_with(|c: char| c.is_whitespace()),
            words,
            text,
        });
    }
    out
}

/// Groups lines into blocks: every unindented line starts one, indented
/// lines belong to the last. Indented lines before any command form a
/// block of their own, which the parser reports.
pub fn blocks<'a>(lines: Vec<Line<'a>>) -> Vec<Block<'a>> {
    let mut out: Vec<Block<'a>> = Vec::new();
    for l in lines {
        match out.last_mut() {
            Some(b) if l.indented => b.body.push(l),
            _ => out.push(Block {
                head: l,
                body: Vec::new(),
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_carry_their_columns_and_comments_vanish() {
        let l = lines("! comment\n\ncrypto map  VPN 10 ipsec-manual\n set peer 198.18.1.1\n");
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].no, 3);
        assert_eq!(l[0].words[2].text, "VPN");
        assert_eq!(l[0].words[2].col, 13);
        assert!(l[1].indented);
        let b = blocks(l);
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].body.len(), 1);
    }
}
