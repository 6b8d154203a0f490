Console.WriteLine("apb-node: not yet");
