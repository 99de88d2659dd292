import time
import mpegcoder as mpegCoder

d = mpegCoder.MpegDecoder()
opened = d.FFmpegSetup('test-video.mp4')
e = mpegCoder.MpegServer()
e.setParameter(configDict=d.getParameter(), codecName='libx264', videoAddress='rtsp://localhost:8554/video') # inherit most of parameters from the decoder.
opened = opened and e.FFmpegSetup() # Load the pusher.
if opened: # If the decoder and the pusher are not loaded successfully, do not continue.
    gop = True
    s = 0
    while gop is not None:
        gop = d.ExtractGOP() # Extract current GOP.
        if gop is not None:
            for i in gop: # Select every frame.
                e.ServeFrame(i) # Serve current frame.
                s += 1
                if s == 10: # Wait for synchronization for each 10 frames.
                    wait = e.getParameter('waitRef')
                    time.sleep(wait)
                    s = 0
    e.FFmpegClose() # End encoding and pushing, and flush all frames in cache.
else:
    print(e)
e.clear() # Close the pusher.
d.clear() # Close the decoder.
