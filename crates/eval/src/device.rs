//! Where training and encoding run: the CPU (burn-flex), a GPU through wgpu
//! (Vulkan, Metal or DirectX; lavapipe runs it on a CPU), or CUDA. One code
//! path serves all of them; only the [`Device`] differs.

use std::fmt;
use std::str::FromStr;

use burn::tensor::Device;

use crate::EvalError;

/// A backend choice, as the command line spells it: `cpu`, `wgpu`, `cuda` or
/// `cuda:N`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeviceChoice {
    /// burn-flex on the CPU (always available).
    #[default]
    Cpu,
    /// The default wgpu adapter (a high-power GPU when there is one;
    /// `CUBECL_WGPU_DEFAULT_DEVICE` overrides). Needs the `wgpu` feature.
    Wgpu,
    /// A CUDA device by index. Needs the `cuda` feature.
    Cuda(usize),
}

impl FromStr for DeviceChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cpu" => Ok(Self::Cpu),
            "wgpu" => Ok(Self::Wgpu),
            "cuda" => Ok(Self::Cuda(0)),
            _ => match s.strip_prefix("cuda:").map(str::parse) {
                Some(Ok(i)) => Ok(Self::Cuda(i)),
                _ => Err(format!(
                    "unknown device `{s}`: expected cpu, wgpu, cuda or cuda:N"
                )),
            },
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cpu => f.write_str("cpu"),
            Self::Wgpu => f.write_str("wgpu"),
            Self::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

impl DeviceChoice {
    /// The burn device (without autodiff), or why it cannot be had: the
    /// backend was not compiled in, or no adapter answered.
    pub fn device(self) -> Result<Device, EvalError> {
        match self {
            Self::Cpu => Ok(Device::flex()),
            Self::Wgpu => wgpu_device(),
            Self::Cuda(index) => cuda_device(index),
        }
    }
}

/// The default wgpu device, initialised once per process (burn refuses a
/// second initialisation of the same runtime, so later calls share it).
#[cfg(feature = "wgpu")]
pub fn wgpu_device() -> Result<Device, EvalError> {
    use std::sync::OnceLock;
    static DEVICE: OnceLock<Result<Device, String>> = OnceLock::new();
    DEVICE
        .get_or_init(|| {
            Device::wgpu_options()
                .init()
                .map_err(|e| format!("no wgpu adapter: {e}"))
        })
        .clone()
        .map_err(|reason| EvalError::Device {
            device: "wgpu".into(),
            reason,
        })
}

/// Without the `wgpu` feature: an error that says how to get it.
#[cfg(not(feature = "wgpu"))]
pub fn wgpu_device() -> Result<Device, EvalError> {
    Err(EvalError::Device {
        device: "wgpu".into(),
        reason: "built without the `wgpu` feature (cargo build --release -p trainer \
                 --features wgpu)"
            .into(),
    })
}

#[cfg(feature = "cuda")]
fn cuda_device(index: usize) -> Result<Device, EvalError> {
    Ok(Device::cuda(index))
}

#[cfg(not(feature = "cuda"))]
fn cuda_device(index: usize) -> Result<Device, EvalError> {
    Err(EvalError::Device {
        device: format!("cuda:{index}"),
        reason: "built without the `cuda` feature (cargo build --release -p trainer \
                 --features cuda; its build downloads an LLVM bundle, so it needs network)"
            .into(),
    })
}

#[cfg(test)]
mod tests {
    use super::DeviceChoice;

    #[test]
    fn parses_and_prints_the_command_line_spelling() {
        for (s, d) in [
            ("cpu", DeviceChoice::Cpu),
            ("wgpu", DeviceChoice::Wgpu),
            ("cuda", DeviceChoice::Cuda(0)),
            ("cuda:3", DeviceChoice::Cuda(3)),
        ] {
            assert_eq!(s.parse::<DeviceChoice>(), Ok(d));
        }
        assert_eq!(DeviceChoice::Cuda(3).to_string(), "cuda:3");
        for bad in ["gpu", "cuda:", "cuda:x", "CPU", ""] {
            assert!(bad.parse::<DeviceChoice>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_cpu_is_always_there() {
        assert!(DeviceChoice::Cpu.device().is_ok());
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_says_how_to_get_it() {
        let e = DeviceChoice::Cuda(0).device().map(|_| ()).unwrap_err();
        assert!(e.to_string().contains("--features cuda"), "{e}");
    }
}
