//! Helpers shared by the inference integration tests.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use candle_core::quantized::gguf_file;

/// Rewrites a GGUF file, letting `edit` change the metadata.
pub fn rewrite_gguf(path: &Path, edit: impl FnOnce(&mut Vec<(String, gguf_file::Value)>)) {
    let mut r = BufReader::new(File::open(path).unwrap());
    let content = gguf_file::Content::read(&mut r).unwrap();
    let mut md: Vec<(String, gguf_file::Value)> = content.metadata.into_iter().collect();
    md.sort_by(|a, b| a.0.cmp(&b.0));
    edit(&mut md);
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort();
    let tensors: Vec<(String, _)> = names
        .iter()
        .map(|n| {
            let info = &content.tensor_infos[*n];
            let t = info
                .read(
                    &mut r,
                    content.tensor_data_offset,
                    &candle_core::Device::Cpu,
                )
                .unwrap();
            ((*n).clone(), t)
        })
        .collect();
    let mut w = File::create(path).unwrap();
    let mdr: Vec<(&str, &gguf_file::Value)> = md.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let tr: Vec<(&str, _)> = tensors.iter().map(|(k, t)| (k.as_str(), t)).collect();
    gguf_file::write(&mut w, &mdr, &tr).unwrap();
}
