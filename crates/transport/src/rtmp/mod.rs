//! RTMP publishing of H.264 in FLV video tags over rml_rtmp.
