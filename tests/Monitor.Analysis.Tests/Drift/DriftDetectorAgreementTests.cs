using Monitor.Analysis.Drift;
using static Monitor.Analysis.Tests.Drift.DetectorRuns;

namespace Monitor.Analysis.Tests.Drift;

/// <summary>
/// Agreement with river on streams beyond its examples: every case of <see cref="DriftAgreementCases"/> must signal
/// drift and warnings at exactly the indices river signals, and ADWIN must end with river's window, bit for bit.
/// </summary>
/// <remarks>
/// The expected values came from river's source run locally under Debian's python3 on these exact streams (dumped
/// from <see cref="DriftStreams"/>): river cannot be installed here, so its detector code was made runnable as plain
/// Python (its small base classes stubbed, the Rust/Cython ADWIN core written without type declarations):
/// rust_src/adwin.rs at b12bc5d2b7ddc0d458b0ce524b5070f1a61122a5 (the same algorithm as the newest
/// river/drift/adwin_c.pyx), river/drift/binary/ddm.py and hddm_a.py at 7cb995639c9185b236a7d45696b85583a175268e,
/// river/drift/binary/hddm_w.py at 3aa815f94e287ce6c657d0c75f08bcbc5f885692, river/drift/binary/eddm.py at
/// 70cad9e796184ed597f8469e9ba1880fca352f4f, river/drift/page_hinkley.py (the version with <c>mode</c>), with
/// river/stats/mean.py, var.py and rust_src/ewmean.rs for the running statistics. The same setup reproduces every
/// index of river's docstrings and test suites (<see cref="DriftDetectorRiverExamplesTests"/>) and agreed with these
/// detectors on about 3,400 further random configurations and streams (gaussian shifts, rate changes, Cauchy and
/// Pareto tails, constant streams), drifts, warnings and ADWIN's final window alike.
/// </remarks>
public sealed class DriftDetectorAgreementTests
{
    // Drift and warning indices per case, as "a,b-c" ranges (see DetectorRuns.Ranges).
    private static readonly Dictionary<string, (string Drifts, string Warnings)> Expected = new()
    {
        ["adwin-defaults-shift"] = ("2047", ""),
        ["adwin-clock1-shift"] = ("2025", ""),
        ["adwin-custom-regimes"] = ("1532,3016,4514", ""),
        ["adwin-defaults-heavy"] = ("383,1919,2559,3679,4479", ""),
        ["adwin-small-buckets-rates"] = ("2040", ""),
        ["adwin-loose-regimes"] = ("1519,3023,3583,4511", ""),
        ["adwin-defaults-constant"] = ("", ""),
        ["ph-defaults-updown"] = ("1019,2005,2985", ""),
        ["ph-up-updown"] = ("109,183,269,438,474,642,1001,1111,1286,1333,1433,1493,1673,1719", ""),
        ["ph-down-updown"] = ("39,167,227,330,530,615,681,732,784,864,1166,1554,1691,1889,1994,2004,2296,2353,2424,2554,2631,2649,2722,2847,2979", ""),
        ["ph-defaults-heavy"] = ("68,184,217,261,291,365,395,433,512,542,600,630,660,703,804,834,909,939,1028,1081,1186,1285,1323,1353,1456,1498,1528,1611,1671,1719,1782,1843,1886,1916,1946,1997,2027,2104,2134,2164,2200,2233,2286,2436,2468,2528,2558,2603,2642,2673,2706,2771,2837,2867,2897,2935,2966,3013,3047,3077,3124,3154,3192,3234,3264,3294,3332,3377,3473,3552,3591,3621,3658,3688,3811,3883,3944,3996,4061,4091,4121,4226,4256,4286,4340,4370,4432,4469,4500,4538,4568,4604,4662,4692,4722,4752,4782,4812,4844,4874,4904,4934,5004,5034,5074,5159,5195,5261,5376,5406,5444,5474,5504,5630,5685,5715,5840,5870,5927,5959", ""),
        ["ph-both-regimes"] = ("1302,1511,2675,3017,3121,3167,3244,3274,3309,3367,3397,3436,3485,3546,3576,3639,3683,3714,3766,3893,3950,4038,4104,4134,4201,4231,4316,4372,4417,4505", ""),
        ["ph-defaults-constant"] = ("", ""),
        ["ddm-defaults-rateup"] = ("2096", "1189,1208,1212-1213,1224-1354,1358-1359,1364,1366-1373,1881-1882,1885-1887,1891,1895-1896,1898-1952,1956-1957,2009-2095,2306,2312,2314-2316,2318-2336,2355-3999"),
        ["ddm-custom-steps"] = ("221,268,276,324,362,382,434,443,453,503,523,786,974,1001,1104,1154,2313,2321", "44-59,71-82,84-104,172-176,198-220,263-267,398-402,428-433,533-535,543-544,568-570,572-580,637,690-691,742-749,752-785,798-801,894-908,950-973,1008-1012,1021-1025,1087-1089,1092-1103,1111-1115,1131,1133-1137,1141-1153,1167,1172,1184,1187-1189,1204-1207,1210-1236,1280-1283,1287-1289,1292-1374,1378-1386,1390-1398,1488,1491-1494,1499-1500,1506-1512,1514-1712,1714-1718,1724,1727-1759,2026-2045,2048-2312,2350-2365,2388,2391,2393-2619,2624-2628,2660-2687"),
        ["ddm-defaults-ones"] = ("", ""),
        ["eddm-defaults-rateup"] = ("1704,1847,2020,2097,2246,2305,2367,2442,2576,2654,2729", "146-158,162-171,513-539,1124-1704,2009-2020,2087-2097,2201-2246,2424-2442,2506-2521,2551-2558,2563-2576,2781-2787,2790-2810,2852-2854,2856-2861,2891-2910,2912-2914,2917-2926,3158-3165,3215-3232,3283-3334"),
        ["eddm-custom-steps"] = ("263,443,678,787,1022,1109,1159,1605,1740,1824,1913,1997,2026,2071", "1103-1109,1222-1255,1292-1350,1363-1377,1491-1605,1700-1740,1984-1997,2142-2241,2429-2808,2844-2866"),
        ["hddm-a-defaults-rateup"] = ("2087", "1075-1077,2061-2062,2064-2086,3522,3539-3542,3555-3570,3592"),
        ["hddm-a-two-sided"] = ("111,1561,3008", "57,60,76-81,83-85,87-110,232-244,246,249-255,287,994-1001,1013-1014,1017-1018,1023,1026-1027,1054-1056,1544-1560,2696,3005-3007,3066,3126-3128,3130-3134,3147,3389,3391,3397-3402,3414-3420,3422,3424-3450,3452-3526,3540-3556,4449-4451"),
        ["hddm-w-defaults-rateup"] = ("2023,3521", "1076,1644,1848,1851,1853,1859-1861,2018,2020-2022,2403,2406-2407,2425,2428,2442-2443,2447,2450-2453,2456,2474-2475,2479,2765,2793,2801,2804,2886-2887,2889,2892,2900,3104,3126-3127,3141,3144-3145,3147-3148,3152,3158-3159,3161,3185,3209,3217-3223,3300-3304,3518-3520,3917-3920,3922"),
        ["hddm-w-two-sided"] = ("996,1599,3124", "70-72,77-80,212,224-227,232-236,284-287,387-392,400,673-674,735-737,830-832,835,871-873,878,894-895,986-995,1145-1147,1240,1285-1286,1307,1431,1510-1522,1526-1529,1547-1550,1555,1561,1566-1568,1577-1581,1586-1598,3010,3066,3118,3121-3123,3290-3291,3416,3579-3580,3669,3714-3716,3963,4025,4029-4030,4129-4130,4270,4307,4336-4337,4408,4416,4450-4451,4472"),
        ["hddm-w-custom-steps"] = ("1152,2139", ""),
    };

    // ADWIN's window after the whole stream: river's width, total and variance (sum of squared deviations).
    private static readonly Dictionary<string, (long Width, double Total, double Variance)> ExpectedAdwinWindow = new()
    {
        ["adwin-defaults-shift"] = (1952, 1940.5493608037377, 1984.3481367917627),
        ["adwin-clock1-shift"] = (1974, 1962.085198525534, 2005.4075440525728),
        ["adwin-custom-regimes"] = (1485, 4457.5846678105845, 14.413090584311444),
        ["adwin-defaults-heavy"] = (1520, 6888.5792078238555, 2905339.7492817827),
        ["adwin-small-buckets-rates"] = (1959, 824.0, 477.4068402246057),
        ["adwin-loose-regimes"] = (1488, 4466.438067793916, 14.433985000306425),
        ["adwin-defaults-constant"] = (5000, 15000.0, 0.0),
    };

    public static TheoryData<string> CaseIds => [.. DriftAgreementCases.All.Select(c => c.Id)];

    [Theory]
    [MemberData(nameof(CaseIds))]
    public void Update_SignalsRiversIndices_OnEachCase(string id)
    {
        AgreementCase c = DriftAgreementCases.All.Single(c => c.Id == id);
        IDriftDetector detector = DriftDetectors.Create(c.Detector, c.Parameters);

        (int[] drifts, int[] warnings) = Run(detector, c.Stream());

        Assert.Equal(Expected[id].Drifts, Ranges(drifts));
        Assert.Equal(Expected[id].Warnings, Ranges(warnings));
        if (detector is AdwinDetector adwin)
        {
            (long width, double total, double variance) = ExpectedAdwinWindow[id];
            Assert.Equal(width, adwin.Width);
            Assert.Equal(total, adwin.Total);
            Assert.Equal(variance, adwin.Variance);
        }
    }

    [Fact]
    public void Expected_CoversEveryCase() => Assert.Equal(DriftAgreementCases.All.Select(c => c.Id).Order(), Expected.Keys.Order());
}
