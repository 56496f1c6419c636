"""Customer reports: text, encoders, clustering, the surge test, the detector and its intake."""
