/**
 * Everything meant for a person goes to stderr, so stdout carries only JSON lines a pipe can parse.
 * On a terminal the progress line is rewritten in place; anywhere else (a log file, a test reading
 * the pipe) each progress line is a line of its own.
 */
export class Terminal {
  private progressShown = false;

  constructor(private readonly stream: NodeJS.WriteStream = process.stderr) {}

  private get inPlace(): boolean {
    return this.stream.isTTY === true;
  }

  status(line: string): void {
    this.clearProgress();
    this.stream.write(`socketsub: ${line}\n`);
  }

  progress(line: string): void {
    if (this.inPlace) {
      this.stream.write(`\r${line}\x1b[K`);
      this.progressShown = true;
    } else {
      this.stream.write(`${line}\n`);
    }
  }

  /** Leaves the last progress line on screen, ending it so whatever follows starts on a fresh line. */
  end(): void {
    if (this.progressShown) this.stream.write('\n');
    this.progressShown = false;
  }

  private clearProgress(): void {
    if (this.progressShown) this.stream.write('\r\x1b[K');
    this.progressShown = false;
  }
}
