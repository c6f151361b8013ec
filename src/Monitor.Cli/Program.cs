using Monitor.Cli;

return await MonitorCommand.Create().Parse(args).InvokeAsync();
