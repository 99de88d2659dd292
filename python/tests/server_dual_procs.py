import mpegcoder as mpegCoder
import multiprocessing


class Decoder(multiprocessing.Process):
    def __init__(self, video_name='test-video.mp4', q_o=None, name=None, daemon=None):
        super().__init__(name=name, daemon=daemon)
        self.video_name = video_name
        self.q_o = q_o

    def run(self):
        d = mpegCoder.MpegDecoder()
        opened = d.FFmpegSetup(self.video_name)
        self.q_o.put(d.getParameter())
        if opened:
            gop = True
            while gop is not None:
                gop = d.ExtractGOP() # Extract current GOP.
                if gop is not None:
                    for i in gop: # Select every frame.
                        self.q_o.put(i)
                else:
                    self.q_o.put(None)
        else:
            print(d)
        d.clear()


class Encoder(multiprocessing.Process):
    def __init__(self, video_addr='rtsp://localhost:8554/video', q_i=None, name=None, daemon=None):
        super().__init__(name=name, daemon=daemon)
        self.video_addr = video_addr
        self.q_i = q_i

    def run(self):
        e = mpegCoder.MpegServer()
        config_dict = self.q_i.get() # Get decoder configurations.
        e.setParameter(configDict=config_dict, codecName='libx264', maxBframe=16, videoAddress=self.video_addr)
        opened = e.FFmpegSetup()
        if opened: # If pusher is not loaded successfully, do not continue.
            frame = True
            while frame is not None:
                frame = self.q_i.get() # Get one frame.
                if frame is not None:
                    e.ServeFrameBlock(frame) # Encode and serve the current frame.
            e.FFmpegClose() # End encoding, and flush all frames in cache.
        else:
            print(e)
        e.clear()


if __name__ == '__main__':
    queue_data = multiprocessing.Queue(maxsize=20)
    proc_dec = Decoder(video_name='test-video.mp4', q_o=queue_data, daemon=True)
    proc_enc = Encoder(video_addr='rtsp://localhost:8554/video', q_i=queue_data, daemon=True)
    proc_dec.start()
    proc_enc.start()
    proc_enc.join()
    proc_dec.join()
