process.stdout.write("bridge CLI: not written yet\n");
