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

/// The devices of data-parallel training, as the command line spells them:
/// comma-separated [`DeviceChoice`]s, the first holding the model and the
/// optimizer. `cpu:N` is a CPU worker (burn-flex has one device; each entry
/// is one more worker thread on it), as is a repeated `wgpu` on the one
/// adapter; `cuda:N` is GPU N.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceList(Vec<DeviceChoice>);

/// The most devices a run may name.
pub const MAX_DEVICES: usize = 64;

impl DeviceList {
    /// The choices, in order.
    pub fn choices(&self) -> &[DeviceChoice] {
        &self.0
    }

    /// The burn devices (without autodiff), in order.
    pub fn devices(&self) -> Result<Vec<Device>, EvalError> {
        self.0.iter().map(|d| d.device()).collect()
    }
}

impl FromStr for DeviceList {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let choices = s
            .split(',')
            .map(|d| {
                let d = d.trim();
                match d.strip_prefix("cpu:").map(str::parse::<usize>) {
                    Some(Ok(_)) => Ok(DeviceChoice::Cpu),
                    Some(Err(_)) => Err(format!("unknown device `{d}`: expected cpu:N")),
                    None => d.parse(),
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        if choices.len() > MAX_DEVICES {
            return Err(format!(
                "{} devices named; at most {MAX_DEVICES}",
                choices.len()
            ));
        }
        Ok(Self(choices))
    }
}

impl fmt::Display for DeviceList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
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
    use super::{DeviceChoice, DeviceList, MAX_DEVICES};

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
    fn device_lists_parse_workers_and_refuse_nonsense() {
        let list: DeviceList = "cpu:0,cpu:1".parse().expect("two CPU workers");
        assert_eq!(list.choices(), [DeviceChoice::Cpu, DeviceChoice::Cpu]);
        assert_eq!(list.to_string(), "cpu,cpu");
        assert_eq!(list.devices().expect("the CPU").len(), 2);
        let list: DeviceList = "cuda:0, cuda:1".parse().expect("two GPUs");
        assert_eq!(
            list.choices(),
            [DeviceChoice::Cuda(0), DeviceChoice::Cuda(1)]
        );
        for bad in ["", "cpu,", "cpu:x", "gpu", "cpu:-1"] {
            assert!(bad.parse::<DeviceList>().is_err(), "{bad}");
        }
        let many = vec!["cpu"; MAX_DEVICES + 1].join(",");
        assert!(many.parse::<DeviceList>().is_err());
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
