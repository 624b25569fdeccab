//! Byte-string helpers the fuzz targets share to read their text inputs.

/// Where `needle` first occurs in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `data` cut at every `sep`.
pub fn split<'a>(mut data: &'a [u8], sep: &[u8]) -> Vec<&'a [u8]> {
    let mut parts = Vec::new();
    while let Some(i) = find(data, sep) {
        parts.push(&data[..i]);
        data = &data[i + sep.len()..];
    }
    parts.push(data);
    parts
}
