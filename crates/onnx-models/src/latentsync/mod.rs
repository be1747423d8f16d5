//! LatentSync (temporary module root).

mod ddim;
mod mel;
mod noise;
mod vae;
