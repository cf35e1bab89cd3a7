//! Random bytes from the operating system (volume keys, salts, wipe patterns).

use crate::error::{Error, Result};

/// Fills `buf` with random bytes; a failing RNG is an I/O error saying so.
pub(crate) fn fill(buf: &mut [u8]) -> Result<()> {
    getrandom::fill(buf).map_err(rng_error)
}

/// `len` random bytes.
pub(crate) fn random(len: usize) -> Result<Vec<u8>> {
    let mut v = vec![0u8; len];
    fill(&mut v)?;
    Ok(v)
}

/// The error of a failing RNG: an I/O error (with the OS error code when there is one)
/// whose context says that random bytes could not be read.
fn rng_error(e: getrandom::Error) -> Error {
    let source = match e.raw_os_error() {
        Some(code) => std::io::Error::from_raw_os_error(code),
        None => std::io::Error::other(e.to_string()),
    };
    Error::Io {
        context: "reading random bytes from the operating system",
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_rng_is_an_io_error_that_says_so() {
        let e = rng_error(getrandom::Error::UNSUPPORTED);
        assert!(
            matches!(&e, Error::Io { context, .. } if context.contains("random bytes")),
            "{e:?}"
        );
        assert!(e.to_string().contains("random bytes"), "{e}");
    }

    #[test]
    fn random_gives_the_length_asked() {
        assert_eq!(random(48).unwrap().len(), 48);
        assert_ne!(random(32).unwrap(), random(32).unwrap());
    }
}
