using System.Text;

namespace Monitor.Tracing.TorchSharp.Tests;

/// <summary>
/// The build's fix-up of TorchSharp's native glue for Debian 12 / Ubuntu 22.04 (README "TorchSharp on Debian 12"):
/// the copy in the build output has its GLIBCXX_3.4.32 need marked weak, nothing else changes, and the NuGet cache
/// copy is left alone.
/// </summary>
public sealed class NativeGlueTests
{
    private const string Version = "GLIBCXX_3.4.32";

    private static string OutputCopy => Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", "libLibTorchSharp.so");

    private static string CacheCopy
    {
        get
        {
            string root = Environment.GetEnvironmentVariable("NUGET_PACKAGES")
                ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
            return Path.Combine(root, "torchsharp", typeof(global::TorchSharp.torch).Assembly.GetName().Version!.ToString(3), "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
        }
    }

    private static bool SystemHasVersion()
    {
        foreach (string candidate in new[] { "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/lib/x86_64-linux-gnu/libstdc++.so.6", "/usr/lib64/libstdc++.so.6" })
        {
            if (File.Exists(candidate))
            {
                return File.ReadAllBytes(candidate).AsSpan().IndexOf(Encoding.ASCII.GetBytes(Version + "\0")) >= 0;
            }
        }

        return false;
    }

    [Fact]
    public void OutputCopy_DiffersFromNuGetCopy_OnlyInTheWeakFlagOfGlibcxx3432()
    {
        Assert.True(OperatingSystem.IsLinux(), "TorchSharp's native glue fix-up applies to Linux only; these tests run on Linux CI");
        byte[] output = File.ReadAllBytes(OutputCopy);
        byte[] cache = File.ReadAllBytes(CacheCopy);
        Assert.Equal(cache.Length, output.Length);

        (long flagsOffset, ushort cacheFlags) = ElfVersionNeeds.Find(cache, Version);
        (_, ushort outputFlags) = ElfVersionNeeds.Find(output, Version);
        Assert.Equal(0, cacheFlags & ElfVersionNeeds.Weak);

        int[] differing = Enumerable.Range(0, output.Length).Where(i => output[i] != cache[i]).ToArray();
        if (SystemHasVersion())
        {
            Assert.Empty(differing);
            return;
        }

        Assert.Equal(ElfVersionNeeds.Weak, outputFlags & ElfVersionNeeds.Weak);
        Assert.Equal(cacheFlags | ElfVersionNeeds.Weak, outputFlags);
        Assert.All(differing, i => Assert.InRange(i, flagsOffset, flagsOffset + 1));
        Assert.NotEmpty(differing);
    }

    [Fact]
    public void TorchSharp_Loads_WithTheSystemLibstdcxx()
    {
        using var t = global::TorchSharp.torch.ones(4);
        Assert.Equal(4f, t.sum().item<float>());
    }

    /// <summary>A reader of ELF64 little-endian .gnu.version_r entries, independent of the build's own patcher.</summary>
    private static class ElfVersionNeeds
    {
        public const int Weak = 0x2;

        public static (long FlagsOffset, ushort Flags) Find(byte[] elf, string version)
        {
            long sections = BitConverter.ToInt64(elf, 0x28);
            int size = BitConverter.ToUInt16(elf, 0x3A);
            int count = BitConverter.ToUInt16(elf, 0x3C);
            for (int s = 0; s < count; s++)
            {
                int header = (int)(sections + (s * size));
                if (BitConverter.ToUInt32(elf, header + 4) != 0x6FFFFFFE)
                {
                    continue;
                }

                int need = (int)BitConverter.ToInt64(elf, header + 24);
                int needs = (int)BitConverter.ToUInt32(elf, header + 44);
                int strings = (int)BitConverter.ToInt64(elf, (int)(sections + (BitConverter.ToUInt32(elf, header + 40) * size) + 24));
                for (int n = 0; n < needs; n++)
                {
                    int aux = need + (int)BitConverter.ToUInt32(elf, need + 8);
                    for (int a = 0; a < BitConverter.ToUInt16(elf, need + 2); a++)
                    {
                        int name = strings + (int)BitConverter.ToUInt32(elf, aux + 8);
                        if (Encoding.ASCII.GetString(elf, name, Array.IndexOf(elf, (byte)0, name) - name) == version)
                        {
                            return (aux + 4, BitConverter.ToUInt16(elf, aux + 4));
                        }

                        aux += (int)BitConverter.ToUInt32(elf, aux + 12);
                    }

                    need += (int)BitConverter.ToUInt32(elf, need + 12);
                }
            }

            throw new InvalidOperationException($"{version} is not among the version needs");
        }
    }
}
