//! Writing and reading the partition table (MBR, or GPT with a protective MBR).

use std::collections::BTreeMap;
use std::fs::File;

use gpt::disk::LogicalBlockSize;
use gpt::partition_types;
use mbrman::{MBRPartitionEntry, BOOT_INACTIVE, CHS, MBR};

pub use crate::table_read::read_table;

use crate::error::ImageError;
use crate::plan::{ImagePlan, PartPlan, SECTOR_SIZE};
use crate::spec::TableKind;

/// MBR type of the boot partition: FAT32 with LBA addressing.
pub const MBR_FAT32_LBA: u8 = 0x0c;
/// MBR type of the root partition: Linux.
pub const MBR_LINUX: u8 = 0x83;
/// GPT type of the boot partition: Microsoft basic data, the type the Pi 5 firmware boots from.
pub const GPT_BASIC_DATA: &str = "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7";
/// GPT type of the root partition: Linux filesystem data.
pub const GPT_LINUX_FS: &str = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";
/// MBR partition type that marks a GPT disk.
pub(crate) const MBR_PROTECTIVE: u8 = 0xee;

/// A partition table as read back from an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionTable {
    /// MBR or GPT.
    pub kind: TableKind,
    /// MBR signature as 8 lowercase hex digits, or the lowercase GPT disk GUID.
    pub disk_id: String,
    /// Used partitions, by index.
    pub partitions: Vec<PartitionEntry>,
}

impl PartitionTable {
    /// The partition with number `index`, if present.
    pub fn partition(&self, index: u32) -> Option<&PartitionEntry> {
        self.partitions.iter().find(|p| p.index == index)
    }
}

/// One partition of a [`PartitionTable`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionEntry {
    /// Partition number, from 1.
    pub index: u32,
    /// First sector.
    pub start_lba: u64,
    /// Length in sectors.
    pub size_lba: u64,
    /// MBR partition type (MBR tables only).
    pub type_code: Option<u8>,
    /// Uppercase GPT partition type GUID (GPT tables only).
    pub type_guid: Option<String>,
    /// PARTUUID as the kernel prints it.
    pub partuuid: String,
}

fn mbr_entry(p: &PartPlan, sys: u8) -> Result<MBRPartitionEntry, ImageError> {
    let too_big = |what: &str| {
        ImageError::BadTable(format!("partition {} {what} does not fit an MBR", p.index))
    };
    Ok(MBRPartitionEntry {
        boot: BOOT_INACTIVE,
        // CHS fields are left empty: every firmware and kernel that matters uses the LBA fields.
        first_chs: CHS::empty(),
        sys,
        last_chs: CHS::empty(),
        starting_lba: u32::try_from(p.start_lba).map_err(|_| too_big("start"))?,
        sectors: u32::try_from(p.size_lba).map_err(|_| too_big("size"))?,
    })
}

fn bad_id(field: &'static str, value: &str, what: &'static str) -> ImageError {
    ImageError::BadPlanId {
        field,
        value: value.to_string(),
        what,
    }
}

fn parse_guid(field: &'static str, value: &str) -> Result<uuid::Uuid, ImageError> {
    uuid::Uuid::parse_str(value).map_err(|_| bad_id(field, value, "GUID"))
}

/// Writes the table of `plan` into `file`, which must already have its final length.
pub(crate) fn write_table(file: &mut File, plan: &ImagePlan) -> Result<(), ImageError> {
    match plan.table {
        TableKind::Mbr => write_mbr(file, plan),
        TableKind::Gpt => write_gpt(file, plan),
    }
}

fn write_mbr(file: &mut File, plan: &ImagePlan) -> Result<(), ImageError> {
    let sig = u32::from_str_radix(&plan.disk_id, 16)
        .ok()
        .filter(|_| plan.disk_id.len() == 8)
        .ok_or_else(|| bad_id("disk_id", &plan.disk_id, "8-digit hex MBR signature"))?;
    let mbr_err = |context: &str| {
        let context = context.to_string();
        move |source| ImageError::Mbr { context, source }
    };
    // The kernel reads the signature as a little-endian number.
    let mut mbr = MBR::new_from(file, SECTOR_SIZE as u32, sig.to_le_bytes())
        .map_err(mbr_err("preparing the MBR"))?;
    mbr[1] = mbr_entry(&plan.boot, MBR_FAT32_LBA)?;
    mbr[2] = mbr_entry(&plan.root, MBR_LINUX)?;
    mbr.write_into(file).map_err(mbr_err("writing the MBR"))
}

fn gpt_err(context: &str) -> impl FnOnce(gpt::GptError) -> ImageError {
    let context = context.to_string();
    move |source| ImageError::Gpt {
        context,
        source: Box::new(source),
    }
}

fn write_gpt(file: &mut File, plan: &ImagePlan) -> Result<(), ImageError> {
    let disk_guid = parse_guid("disk_id", &plan.disk_id)?;
    let part = |p: &PartPlan, field: &'static str, kind: partition_types::Type, name: &str| {
        Ok::<_, ImageError>(gpt::partition::Partition {
            part_type_guid: kind,
            part_guid: parse_guid(field, &p.partuuid)?,
            first_lba: p.start_lba,
            last_lba: p.start_lba + p.size_lba - 1,
            flags: 0,
            name: name.to_string(),
        })
    };
    let mut parts = BTreeMap::new();
    parts.insert(
        1,
        part(
            &plan.boot,
            "boot.partuuid",
            partition_types::BASIC,
            "bootfs",
        )?,
    );
    parts.insert(
        2,
        part(
            &plan.root,
            "root.partuuid",
            partition_types::LINUX_FS,
            "rootfs",
        )?,
    );

    let mut disk = gpt::GptConfig::new()
        .writable(true)
        .logical_block_size(LogicalBlockSize::Lb512)
        .create_from_device(&mut *file, Some(disk_guid))
        .map_err(gpt_err("preparing the GPT"))?;
    disk.update_partitions(parts)
        .map_err(gpt_err("adding partitions to the GPT"))?;
    disk.write().map_err(gpt_err("writing the GPT"))?;

    // gpt's write() leaves LBA 0 alone; without a protective MBR nothing recognises the disk.
    let total_lba = plan.total_size / SECTOR_SIZE;
    let protective_len = u32::try_from(total_lba - 1).unwrap_or(u32::MAX);
    gpt::mbr::ProtectiveMBR::with_lb_size(protective_len)
        .overwrite_lba0(file)
        .map_err(|source| ImageError::Gpt {
            context: "writing the protective MBR".to_string(),
            source: Box::new(source),
        })?;
    Ok(())
}
