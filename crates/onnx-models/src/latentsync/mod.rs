//! LatentSync (temporary module root).

mod ddim;
mod mel;
mod noise;
#[cfg(test)]
mod testing;
mod vae;
