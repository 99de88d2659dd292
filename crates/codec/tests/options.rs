//! The options structs are built from their defaults with `with_*` setters, which set exactly
//! what they say.

use std::time::Duration;

use mpegcoder_codec::{
    DecoderOptions, EncoderConfig, OpenOptions, PacketDecoderOptions, PixelLayout, Rational,
};

#[test]
fn open_options_setters() {
    let o = OpenOptions::default();
    assert_eq!(o.timeout, Some(Duration::from_secs(10)));
    assert!(o.format_options.is_empty());
    let o = o
        .with_timeout(Duration::from_millis(2500))
        .with_format_option("rtsp_transport", "tcp")
        .with_format_option("probesize", "32");
    assert_eq!(o.timeout, Some(Duration::from_millis(2500)));
    assert_eq!(
        o.format_options,
        vec![
            ("rtsp_transport".to_owned(), "tcp".to_owned()),
            ("probesize".to_owned(), "32".to_owned()),
        ]
    );
    let o = o
        .with_timeout(None)
        .with_format_options(vec![("a".into(), "b".into())]);
    assert_eq!(o.timeout, None);
    assert_eq!(o.format_options, vec![("a".to_owned(), "b".to_owned())]);
}

#[test]
fn decoder_options_setters() {
    let d = DecoderOptions::default();
    assert_eq!(
        (d.width_dst, d.height_dst, d.threads, d.output),
        (None, None, 0, PixelLayout::Rgb24)
    );
    assert_eq!(d.open, OpenOptions::default());
    let open = OpenOptions::default().with_timeout(Some(Duration::from_secs(1)));
    let d = d
        .with_width_dst(320)
        .with_height_dst(180)
        .with_threads(3)
        .with_output(PixelLayout::Yuv420p)
        .with_open(open.clone());
    assert_eq!(d.width_dst, Some(320));
    assert_eq!(d.height_dst, Some(180));
    assert_eq!(d.threads, 3);
    assert_eq!(d.output, PixelLayout::Yuv420p);
    assert_eq!(d.open, open);
    // Fields stay public for reading and changing.
    let mut d = d;
    d.threads = 1;
    assert_eq!(d.with_threads(1).threads, 1);
}

#[test]
fn packet_decoder_options_setters() {
    let p = PacketDecoderOptions::default();
    assert_eq!(
        (p.output, p.width_dst, p.height_dst, p.threads),
        (PixelLayout::Rgb24, None, None, 1)
    );
    let p = p
        .with_output(PixelLayout::Yuv420p)
        .with_width_dst(64)
        .with_height_dst(48)
        .with_threads(0);
    assert_eq!(
        (p.output, p.width_dst, p.height_dst, p.threads),
        (PixelLayout::Yuv420p, Some(64), Some(48), 0)
    );
    // Optional values can be passed through, or cleared.
    let keep: Option<u32> = Some(32);
    let p = p.with_width_dst(keep).with_height_dst(None);
    assert_eq!((p.width_dst, p.height_dst), (Some(32), None));
}

#[test]
fn encoder_config_setters() {
    let c = EncoderConfig::new(640, 360, Rational::new(30, 1))
        .with_size(320, 180)
        .with_source_size(640, 360)
        .with_frame_rate(Rational::new(25, 1))
        .with_time_base(Rational::new(1, 1000))
        .with_bit_rate(1_500_000)
        .with_crf(20.5)
        .with_gop_size(50)
        .with_max_b_frames(2)
        .with_preset("ultrafast")
        .with_tune("zerolatency")
        .with_profile("high")
        .with_threads(2)
        .with_x264_param("keyint_min", "25");
    assert_eq!((c.width, c.height), (320, 180));
    assert_eq!((c.source_width, c.source_height), (640, 360));
    assert_eq!(c.frame_rate, Rational::new(25, 1));
    assert_eq!(c.time_base, Rational::new(1, 1000));
    assert_eq!(c.bit_rate, 1_500_000, "bits per second");
    assert_eq!(c.crf, Some(20.5));
    assert_eq!((c.gop_size, c.max_b_frames), (50, 2));
    assert_eq!(c.preset, "ultrafast");
    assert_eq!(c.tune.as_deref(), Some("zerolatency"));
    assert_eq!(c.profile.as_deref(), Some("high"));
    assert_eq!(c.threads, 2);
    assert_eq!(
        c.x264_params,
        vec![("keyint_min".to_owned(), "25".to_owned())]
    );
    c.validate().expect("a valid configuration");
    assert_eq!(c.clone().with_crf(None).crf, None);
    let c = c.with_x264_params(Vec::new());
    assert!(c.x264_params.is_empty());
}
