// AudioWorklet: the microphone's samples, mixed to mono, handed to the page in blocks of 4096.
class Capture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.block = new Float32Array(4096);
    this.n = 0;
  }

  process(inputs) {
    const channels = inputs[0];
    if (channels && channels.length) {
      const count = channels.length;
      const frames = channels[0].length;
      for (let i = 0; i < frames; i++) {
        let s = 0;
        for (let c = 0; c < count; c++) s += channels[c][i];
        this.block[this.n++] = s / count;
        if (this.n === this.block.length) {
          this.port.postMessage(this.block, [this.block.buffer]);
          this.block = new Float32Array(4096);
          this.n = 0;
        }
      }
    }
    return true;
  }
}

registerProcessor("dymn-capture", Capture);
