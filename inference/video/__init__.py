"""Video segmentation: trackers (SAM 2.1's video predictor, or optical flow without weights), the
video states kept warm per (video, model), and the recorded propagation runs that stream each frame."""
