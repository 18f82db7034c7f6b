use std::collections::BTreeMap;

use rstest::rstest;

use super::*;

/// A boot partition in memory: path → content.
fn run(files: &[(&str, &str)], tryboot: bool) -> Result<BootSelection, FirmwareError> {
    let map: BTreeMap<String, Vec<u8>> = files
        .iter()
        .map(|(p, c)| (p.to_string(), c.as_bytes().to_vec()))
        .collect();
    let read = move |path: &str| map.get(path).cloned();
    select(&FirmwareInput {
        tryboot,
        model: Model::Pi5,
        read: &read,
    })
}

fn ok(files: &[(&str, &str)], tryboot: bool) -> BootSelection {
    match run(files, tryboot) {
        Ok(sel) => sel,
        Err(e) => panic!("selection failed: {e}"),
    }
}

const K: (&str, &str) = ("kernel_2712.img", "K");
const C: (&str, &str) = ("cmdline.txt", "root=/dev/vda2 console=ttyAMA0\n");

#[test]
fn defaults_with_an_empty_config() {
    let sel = ok(&[K, C, ("config.txt", "")], false);
    assert_eq!(sel.config_file, "config.txt");
    assert_eq!(sel.kernel, "kernel_2712.img");
    assert_eq!(sel.initramfs, None);
    assert_eq!(sel.cmdline_file, "cmdline.txt");
    assert_eq!(sel.cmdline, "root=/dev/vda2 console=ttyAMA0");
    assert_eq!(sel.os_prefix, "");
}

/// A Pi 5 counts a FAT partition as bootable only when it holds config.txt, tryboot or not.
#[rstest]
#[case::normal(false)]
#[case::tryboot(true)]
fn no_config_txt_does_not_boot(#[case] tryboot: bool) {
    let err = run(&[K, C, ("tryboot.txt", "")], tryboot).unwrap_err();
    assert!(matches!(err, FirmwareError::NotBootable), "{err}");
    assert!(err.to_string().contains("no config.txt"), "{err}");
}

#[test]
fn tryboot_without_tryboot_txt_uses_defaults() {
    let sel = ok(&[K, C, ("config.txt", "kernel=nope.img\n")], true);
    assert_eq!(sel.kernel, "kernel_2712.img");
    assert!(sel
        .notes
        .iter()
        .any(|n| n.contains("tryboot.txt does not exist")));
}

/// Which kernel a one-section config selects: a kernel per filter, `kernel=` under the section.
#[rstest]
#[case::all("[all]", "sel.img")]
#[case::pi5("[pi5]", "sel.img")]
#[case::pi5_upper("[PI5]", "sel.img")]
#[case::board_type_pi5("[board-type=0x17]", "sel.img")]
#[case::board_type_pi4("[board-type=0x11]", "kernel_2712.img")]
#[case::none("[none]", "kernel_2712.img")]
#[case::pi4("[pi4]", "kernel_2712.img")]
#[case::pi3("[pi3]", "kernel_2712.img")]
#[case::pi0("[pi0]", "kernel_2712.img")]
#[case::cm4("[cm4]", "kernel_2712.img")]
#[case::cm5("[cm5]", "kernel_2712.img")]
#[case::pi500("[pi500]", "kernel_2712.img")]
#[case::pi500_plus_is_no_documented_filter("[pi500+]", "kernel_2712.img")]
#[case::pi400("[pi400]", "kernel_2712.img")]
#[case::tryboot_off("[tryboot]", "kernel_2712.img")]
#[case::edid("[EDID=DEL-DELL_U2422H]", "kernel_2712.img")]
#[case::gpio("[gpio4=1]", "kernel_2712.img")]
fn section_filters(#[case] section: &str, #[case] expected: &str) {
    let config = format!("{section}\nkernel=sel.img\n");
    let sel = ok(&[K, C, ("sel.img", "S"), ("config.txt", &config)], false);
    assert_eq!(sel.kernel, expected, "section {section}");
}

#[rstest]
// Same type replaces: [pi4] then [pi5] → pi5 applies.
#[case::model_replaces_model("[pi4]\n[pi5]\nkernel=sel.img\n", "sel.img")]
// Different types combine: [pi5] and [tryboot] (flag off) → false.
#[case::types_combine("[pi5]\n[tryboot]\nkernel=sel.img\n", "kernel_2712.img")]
// [all] resets everything, including [none].
#[case::all_resets_none("[none]\nkernel=x.img\n[all]\nkernel=sel.img\n", "sel.img")]
// [none] stays until [all], even across a model filter.
#[case::none_survives_model("[none]\n[pi5]\nkernel=sel.img\n", "kernel_2712.img")]
// Later settings override earlier ones.
#[case::later_wins("kernel=x.img\nkernel=sel.img\n", "sel.img")]
#[case::filtered_later_ignored("kernel=sel.img\n[pi4]\nkernel=x.img\n", "sel.img")]
// Comments, blank lines, surrounding whitespace and CRLF.
#[case::comments_whitespace("# kernel=x.img\n\n   kernel = sel.img   \r\n", "sel.img")]
#[case::commented_section("#[pi4]\nkernel=sel.img\n", "sel.img")]
fn section_combinations(#[case] config: &str, #[case] expected: &str) {
    let sel = ok(
        &[
            K,
            C,
            ("sel.img", "S"),
            ("x.img", "X"),
            ("config.txt", config),
        ],
        false,
    );
    assert_eq!(sel.kernel, expected, "config {config:?}");
}

#[rstest]
#[case::flag_off(false, "config.txt", "a.img")]
#[case::flag_on(true, "tryboot.txt", "b.img")]
fn tryboot_reads_tryboot_txt(#[case] flag: bool, #[case] file: &str, #[case] kernel: &str) {
    let sel = ok(
        &[
            C,
            ("a.img", "A"),
            ("b.img", "B"),
            ("config.txt", "kernel=a.img\n"),
            ("tryboot.txt", "kernel=b.img\n"),
        ],
        flag,
    );
    assert_eq!(sel.config_file, file);
    assert_eq!(sel.kernel, kernel);
}

#[rstest]
#[case::flag_off(false, "kernel_2712.img")]
#[case::flag_on(true, "b.img")]
fn tryboot_filter_follows_flag(#[case] flag: bool, #[case] kernel: &str) {
    let cfg = "[tryboot]\nkernel=b.img\n[all]\n";
    let sel = ok(
        &[
            K,
            C,
            ("b.img", "B"),
            ("config.txt", cfg),
            ("tryboot.txt", cfg),
        ],
        flag,
    );
    assert_eq!(sel.kernel, kernel);
}

/// The Pi 5's EEPROM bootloader does not follow `include`: nothing of the file applies.
#[test]
fn include_is_ignored_and_noted() {
    let sel = ok(
        &[
            K,
            C,
            ("a.img", "A"),
            ("config.txt", "[pi5]\ninclude extra.txt\n"),
            ("extra.txt", "kernel=a.img\n"),
        ],
        false,
    );
    assert_eq!(sel.kernel, "kernel_2712.img");
    assert!(
        sel.notes
            .iter()
            .any(|n| n.contains("include extra.txt") && n.contains("does not support")),
        "{:?}",
        sel.notes
    );
}

#[test]
fn os_prefix_applies_to_all_os_files() {
    let sel = ok(
        &[
            (
                "config.txt",
                "os_prefix=gen-2/\ninitramfs initrd.img followkernel\ndevice_tree=my.dtb\n",
            ),
            ("gen-2/kernel_2712.img", "K"),
            ("gen-2/initrd.img", "I"),
            ("gen-2/cmdline.txt", "gen2 cmdline"),
            ("gen-2/my.dtb", "D"),
            C,
        ],
        false,
    );
    assert_eq!(sel.os_prefix, "gen-2/");
    assert_eq!(sel.kernel, "gen-2/kernel_2712.img");
    assert_eq!(sel.initramfs.as_deref(), Some("gen-2/initrd.img"));
    assert_eq!(sel.cmdline_file, "gen-2/cmdline.txt");
    assert_eq!(sel.cmdline, "gen2 cmdline");
    assert_eq!(sel.device_tree.as_deref(), Some("gen-2/my.dtb"));
}

#[test]
fn os_prefix_can_be_a_file_name_part() {
    let sel = ok(
        &[
            ("config.txt", "os_prefix=test-\n"),
            ("test-kernel_2712.img", "K"),
            ("test-cmdline.txt", "t"),
        ],
        false,
    );
    assert_eq!(sel.kernel, "test-kernel_2712.img");
    assert_eq!(sel.cmdline, "t");
}

#[test]
fn os_prefix_without_kernel_is_ignored() {
    let sel = ok(&[K, C, ("config.txt", "os_prefix=gone/\n")], false);
    assert_eq!(sel.os_prefix, "");
    assert_eq!(sel.kernel, "kernel_2712.img");
    assert!(sel.notes.iter().any(|n| n.contains("ignored")));
}

#[test]
fn os_prefix_without_its_dtb_is_ignored_when_a_dtb_exists() {
    let sel = ok(
        &[
            K,
            C,
            ("bcm2712-rpi-5-b.dtb", "D"),
            ("p/kernel_2712.img", "K2"),
            ("p/cmdline.txt", "p"),
            ("config.txt", "os_prefix=p/\n"),
        ],
        false,
    );
    assert_eq!(sel.os_prefix, "");
    assert_eq!(sel.device_tree.as_deref(), Some("bcm2712-rpi-5-b.dtb"));
}

#[test]
fn absolute_paths_bypass_os_prefix() {
    let sel = ok(
        &[
            (
                "config.txt",
                "os_prefix=p/\nkernel=/common.img\ncmdline=/cmd.txt\n",
            ),
            ("p/common.img", "wrong"),
            ("common.img", "K"),
            ("cmd.txt", "shared"),
        ],
        false,
    );
    // Viability is tested on the absolute kernel, which exists.
    assert_eq!(sel.os_prefix, "p/");
    assert_eq!(sel.kernel, "common.img");
    assert_eq!(sel.cmdline_file, "cmd.txt");
}

#[rstest]
#[case::followkernel("initramfs init.gz followkernel", Some("init.gz"), &[])]
#[case::zero_address("initramfs init.gz 0", Some("init.gz"), &[])]
#[case::hex_address("initramfs init.gz 0x00800000", Some("init.gz"), &[])]
#[case::several("initramfs init.gz,more.cpio followkernel", Some("init.gz"), &["more.cpio"])]
#[case::ramfsfile("ramfsfile=init.gz", Some("init.gz"), &[])]
#[case::auto("auto_initramfs=1", Some("initramfs_2712"), &[])]
#[case::auto_off("auto_initramfs=0", None, &[])]
#[case::explicit_beats_auto("auto_initramfs=1\ninitramfs init.gz followkernel", Some("init.gz"), &[])]
fn initramfs_rules(#[case] config: &str, #[case] expected: Option<&str>, #[case] extra: &[&str]) {
    let sel = ok(
        &[
            K,
            C,
            ("config.txt", config),
            ("init.gz", "I"),
            ("more.cpio", "M"),
            ("initramfs_2712", "A"),
        ],
        false,
    );
    assert_eq!(sel.initramfs.as_deref(), expected, "config {config:?}");
    assert_eq!(sel.extra_initramfs, extra);
}

#[test]
fn auto_initramfs_follows_kernel_name() {
    let sel = ok(
        &[
            ("config.txt", "kernel=kernel8.img\nauto_initramfs=1\n"),
            ("kernel8.img", "K"),
            ("initramfs8", "I"),
            ("initramfs_2712", "wrong"),
            C,
        ],
        false,
    );
    assert_eq!(sel.initramfs.as_deref(), Some("initramfs8"));
}

#[test]
fn auto_initramfs_missing_file_boots_without() {
    let sel = ok(&[K, C, ("config.txt", "auto_initramfs=1\n")], false);
    assert_eq!(sel.initramfs, None);
    assert!(sel.notes.iter().any(|n| n.contains("initramfs_2712")));
}

#[test]
fn cmdline_file_setting_and_first_line_only() {
    let sel = ok(
        &[
            K,
            ("config.txt", "cmdline=other.txt\n"),
            ("other.txt", "  a=1 b=2  \nsecond line\n"),
        ],
        false,
    );
    assert_eq!(sel.cmdline_file, "other.txt");
    assert_eq!(sel.cmdline, "a=1 b=2");
    assert!(sel.notes.iter().any(|n| n.contains("first line")));
}

#[test]
fn long_lines_are_cut_at_98_characters() {
    let long = format!("kernel={}", "k".repeat(200));
    let cut = &long["kernel=".len()..MAX_LINE_CHARS];
    let sel = ok(&[C, (cut, "K"), ("config.txt", &long)], false);
    assert_eq!(sel.kernel, cut);
}

#[test]
fn settings_map_holds_last_values() {
    let sel = ok(
        &[K, C, ("config.txt", "dtparam=a\nArm_Boost=1\ndtparam=b\n")],
        false,
    );
    assert_eq!(sel.settings.get("dtparam").map(String::as_str), Some("b"));
    assert_eq!(sel.settings.get("arm_boost").map(String::as_str), Some("1"));
}

#[rstest]
#[case::kernel(&[C, ("config.txt", "")], "kernel_2712.img")]
#[case::kernel_setting(&[C, ("config.txt", "kernel=vmlinuz\n")], "vmlinuz")]
#[case::kernel_tryboot(&[C, ("config.txt", ""), ("tryboot.txt", "kernel=new.img\n")], "new.img")]
fn missing_kernel_names_the_file(#[case] files: &[(&str, &str)], #[case] path: &str) {
    let tryboot = files.iter().any(|(f, _)| *f == "tryboot.txt");
    match run(files, tryboot) {
        Err(FirmwareError::KernelMissing { path: p, .. }) => assert_eq!(p, path),
        other => panic!("expected KernelMissing, got {other:?}"),
    }
}

#[rstest]
#[case::default(&[K, ("config.txt", "")], "cmdline.txt")]
#[case::setting(&[K, ("config.txt", "cmdline=c2.txt\n")], "c2.txt")]
#[case::prefixed(&[K, ("p/kernel_2712.img", "K"), ("config.txt", "os_prefix=p/\n")], "p/cmdline.txt")]
fn missing_cmdline_names_the_file(#[case] files: &[(&str, &str)], #[case] path: &str) {
    match run(files, false) {
        Err(e @ FirmwareError::CmdlineMissing { .. }) => {
            assert!(e.to_string().contains(path), "{e}");
        }
        other => panic!("expected CmdlineMissing, got {other:?}"),
    }
}

#[test]
fn missing_initramfs_is_an_error() {
    let err = run(
        &[K, C, ("config.txt", "initramfs gone.img followkernel\n")],
        false,
    )
    .unwrap_err();
    assert!(err.to_string().contains("gone.img"), "{err}");
}
