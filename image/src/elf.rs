//! What a dynamically linked ELF file needs at run time: its program interpreter and the
//! shared libraries it names (`DT_NEEDED`), read from the file, never by running it.

use std::path::Path;

use crate::{Error, Result};

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Needs {
    /// `PT_INTERP`, the loader's absolute path; `None` for a static binary or a library.
    pub interpreter: Option<String>,
    /// `DT_NEEDED` sonames, in file order.
    pub libraries: Vec<String>,
}

pub fn needs(path: &Path, bytes: &[u8]) -> Result<Needs> {
    let elf = goblin::elf::Elf::parse(bytes).map_err(|e| Error::Elf {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    Ok(Needs {
        interpreter: elf.interpreter.map(str::to_owned),
        libraries: elf.libraries.iter().map(|l| (*l).to_owned()).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dynamic_executable_names_its_loader_and_libc() -> Result<()> {
        // The test binary itself is a dynamically linked glibc executable.
        let exe = std::env::current_exe().map_err(Error::io("current_exe"))?;
        let bytes = std::fs::read(&exe).map_err(Error::io(&exe))?;
        let n = needs(&exe, &bytes)?;
        assert!(
            n.interpreter
                .as_deref()
                .is_some_and(|i| i.contains("ld-linux")),
            "{n:?}"
        );
        assert!(
            n.libraries.iter().any(|l| l.starts_with("libc.so")),
            "{n:?}"
        );
        Ok(())
    }

    #[test]
    fn a_text_file_is_refused_with_its_path() {
        let err = needs(Path::new("/x/run.sh"), b"#!/bin/sh\necho hi\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.starts_with("/x/run.sh: not an ELF file"), "{err}");
    }
}
